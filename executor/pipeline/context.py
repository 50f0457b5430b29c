"""The variables `${...}` sees: `vars` files and mappings, plus `item`/`key` while generating.

Mirrors DVC's `dvc/parsing/context.py`: the default `params.yaml` beside dvc.yaml is loaded
first if it exists; files and inline mappings merge recursively and may never redefine a value;
a file loaded whole cannot be loaded again in part (or the reverse); non-string keys are
invisible; a date or other non-plain value anywhere in a loaded file is an error. Contexts are
immutable: merging copies only the mappings on the merged paths.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from executor.errors import PipelineError
from executor.pipeline import interpolation
from executor.pipeline.model import repo_path
from executor.pipeline.params import ParamsReader

_SCALARS = (int, float, str, bytes, bool, type(None))


@dataclass(frozen=True)
class Context:
    """Variables for interpolation; `local` holds the reserved `item` and `key`."""

    data: Mapping[str, Any] = field(default_factory=dict)
    imports: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    sources: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    local: Mapping[str, Any] = field(default_factory=dict)

    def select(self, key: str) -> Any:
        """The value of a dotted key; KeyError if it is not defined."""
        name = key.partition(".")[0].strip()
        return interpolation.select(self.local if name in self.local else self.data, key)

    def with_local(self, local: Mapping[str, Any]) -> Context:
        """This context with `item`/`key` set (they shadow vars and cannot be redefined)."""
        return replace(self, local={name: plain(value, name) for name, value in local.items()})

    def merged(self, source: str, values: Mapping[str, Any]) -> Context:
        """This context with `values` (already plain, from `source`) merged in."""
        reserved = [name for name in values if name in self.local]
        if reserved:
            names = " and ".join(reserved)
            raise PipelineError(f"attempted to modify reserved key {names} in '{source}'")
        data = self._merge(self.data, values, (), source)
        return replace(self, data=data, sources=(*self.sources, (source, values)))

    def _merge(
        self, into: Mapping[str, Any], update: Mapping[str, Any], path: tuple[str, ...], source: str
    ) -> dict[str, Any]:
        result = dict(into)
        for name, value in update.items():
            here = (*path, name)
            if isinstance(result.get(name), Mapping) and isinstance(value, Mapping):
                result[name] = self._merge(result[name], value, here, source)
            elif name in result:
                raise PipelineError(
                    f"cannot redefine '{'.'.join(here)}' from '{source}' "
                    f"as it already exists in '{self._origin(here)}'"
                )
            else:
                result[name] = value
        return result

    def _origin(self, path: tuple[str, ...]) -> str:
        for source, values in self.sources:
            node: Any = values
            for name in path:
                if not isinstance(node, Mapping) or name not in node:
                    break
                node = node[name]
            else:
                return source
        return "<local>"


def load_vars(
    context: Context,
    items: Sequence[Any],
    wdir: str,
    reader: ParamsReader,
    *,
    stage: str | None = None,
    default: str | None = None,
) -> Context:
    """Merge `vars` entries (files relative to the repo-relative `wdir`, or mappings)."""
    if default is not None and reader.exists(repo_path(wdir, default)):
        context = _merge_file(context, default, wdir, reader)
    for index, item in enumerate(items):
        if isinstance(item, str):
            context = _merge_file(context, item, wdir, reader)
        else:
            source = f"{stage}.vars[{index}]" if stage else f"vars[{index}]"
            context = context.merged(source, plain(item, source))
    return context


def _merge_file(context: Context, item: str, wdir: str, reader: ParamsReader) -> Context:
    name, _, keys_text = item.partition(":")
    path = repo_path(wdir, name)
    keys = tuple(key for key in keys_text.split(",") if key) or None
    if path in context.imports:
        loaded = context.imports[path]
        if keys is None and loaded is None:
            return context  # naming a whole file twice is allowed
        if keys is None or (loaded is not None and set(keys) & set(loaded)):
            raise PipelineError(f"cannot load '{item}' as it's partially loaded already")
        if loaded is None:
            raise PipelineError(f"cannot partially load '{item}' as it's already loaded.")
    if path == ".." or path.startswith("../") or posixpath.isabs(path):
        raise PipelineError(f"vars file '{item}' is outside of the repository")
    if not reader.exists(path):
        raise PipelineError(f"'{path}' does not exist")
    document = reader.document(path)
    if not isinstance(document, Mapping):
        raise PipelineError(f"expected a dictionary, got '{type(document).__name__}' in '{path}'")
    if keys is not None:
        missing = [key for key in keys if key not in document]
        if missing:
            raise PipelineError(f"could not find '{missing[0]}' in '{path}'")
        document = {key: document[key] for key in keys}
    merged = context.merged(path, plain(document, path))
    before = context.imports.get(path)
    imported = None if keys is None else (*(before or ()), *keys)
    return replace(merged, imports={**context.imports, path: imported})


def plain(value: Any, source: str, path: tuple[Any, ...] = ()) -> Any:
    """A fresh copy holding only what DVC's context holds; non-string keys are dropped."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {
            key: plain(item, source, (*path, key))
            for key, item in value.items()
            if isinstance(key, str)
        }
    if isinstance(value, list):
        return [plain(item, source, (*path, index)) for index, item in enumerate(value)]
    where = f"{source}:{'.'.join(map(str, path))}"
    raise PipelineError(f"Unsupported value of type '{type(value).__name__}' in '{where}'")
