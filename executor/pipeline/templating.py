"""Stage definitions after `${}`, `vars`, `foreach` and `matrix`, as `dvc/parsing` expands them.

Every field but `vars` is interpolated, mapping keys included. `foreach` over a dict names
stages `name@<key>`; over a list of scalars `name@<value>`; over a list holding lists or dicts
`name@<index>`, and only a dict sets `${key}`. `matrix` names are `name@v1-v2` (a list or dict
value contributes `<axis><index>`), `${item.<axis>}` is the value and `${key}` the suffix.
Values DVC reaches through a `${...}` reference are named with `str()` rather than DVC's
rendering, so `${flags}` holding `true` gives `name@True` where a literal `true` gives
`name@true`: DVC does exactly that.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import product
from typing import Any, TypeVar

from executor.errors import PipelineError
from executor.pipeline import interpolation
from executor.pipeline.context import Context, load_vars
from executor.pipeline.params import ParamsReader
from executor.pipeline.yamldoc import KeyPath, YamlDoc

T = TypeVar("T")

DEFAULT_VARS_FILE = "params.yaml"


@dataclass(frozen=True)
class Generated:
    """One stage after templating; `origin` is the key path of its definition in dvc.yaml."""

    name: str
    fields: dict[str, Any]
    group: str | None
    origin: KeyPath


class Expander:
    """Expands the stages of one dvc.yaml (repo-relative `dvcfile`)."""

    def __init__(self, dvcfile: str, doc: YamlDoc, reader: ParamsReader) -> None:
        self.dvcfile = dvcfile
        self.doc = doc
        self.reader = reader
        self.dir = posixpath.dirname(dvcfile) or "."
        items = doc.data.get("vars") or []
        self.context = self._guard(
            "vars",
            ("vars",),
            partial(load_vars, Context(), items, self.dir, reader, default=DEFAULT_VARS_FILE),
        )

    def expand(self, name: str, definition: Mapping[str, Any]) -> list[Generated]:
        """The stages `definition` stands for, in DVC's order."""
        origin: KeyPath = ("stages", name)
        if "foreach" in definition:
            template = definition["do"]
            loops = self._foreach(name, definition["foreach"], (*origin, "foreach"))
            origin = (*origin, "do")
        elif "matrix" in definition:
            template = definition
            loops = self._matrix(name, definition["matrix"], (*origin, "matrix"))
        else:
            fields = self._entry(name, definition, self.context, origin)
            return [Generated(name, fields, None, origin)]
        generated = []
        for suffix, local in loops.items():
            full = f"{name}@{suffix}"
            with_item = partial(self.context.with_local, local)
            context = self._guard(f"stage '{full}'", origin, with_item)
            fields = self._entry(full, template, context, origin)
            generated.append(Generated(full, fields, name, origin))
        return generated

    def _entry(
        self, name: str, template: Mapping[str, Any], context: Context, origin: KeyPath
    ) -> dict[str, Any]:
        items = template.get("vars") or []
        if items:
            wdir = self.dir
            if template.get("wdir"):
                raw = self._resolve(template["wdir"], context, None, name, (*origin, "wdir"))
                wdir = posixpath.join(self.dir, interpolation.to_str(raw))
            context = self._guard(
                f"stage '{name}': vars",
                (*origin, "vars"),
                partial(load_vars, context, items, wdir, self.reader, stage=name),
            )
        return {
            field: self._resolve(value, context, field, name, (*origin, field))
            for field, value in template.items()
            if field not in ("vars", "matrix")
        }

    def _foreach(self, name: str, raw: Any, where: KeyPath) -> dict[str, dict[str, Any]]:
        data, referenced = self._loop_data(raw, name, where)
        if isinstance(data, Mapping):
            return {
                interpolation.to_str(key): {"item": value, "key": interpolation.to_str(key)}
                for key, value in data.items()
            }
        if not isinstance(data, list):
            kind = type(data).__name__
            message = f"stage '{name}': foreach: expected a list or mapping, got {kind}"
            raise self._error(message, where)
        if any(isinstance(value, (dict, list)) for value in data):
            return {str(index): {"item": value} for index, value in enumerate(data)}
        flags = _flags(referenced, len(data))
        return {
            _fragment(value, flag): {"item": value} for value, flag in zip(data, flags, strict=True)
        }

    def _matrix(
        self, name: str, axes: Mapping[str, Any], where: KeyPath
    ) -> dict[str, dict[str, Any]]:
        choices: dict[str, list[tuple[Any, bool]]] = {}
        for axis, raw in axes.items():
            values, referenced = self._loop_data(raw, name, (*where, axis))
            if isinstance(values, (str, Mapping)):
                values = list(values)  # DVC enumerates them: characters, keys
            if not isinstance(values, list):
                kind = type(values).__name__
                message = f"stage '{name}': matrix: '{axis}' must be a list, got {kind}"
                raise self._error(message, (*where, axis))
            flags = _flags(referenced, len(values))
            choices[axis] = list(zip(values, flags, strict=True))
        loops: dict[str, dict[str, Any]] = {}
        for combination in product(*(enumerate(options) for options in choices.values())):
            item: dict[str, Any] = {}
            fragments = []
            for axis, (index, (value, flag)) in zip(choices, combination, strict=True):
                item[axis] = value
                composite = isinstance(value, (dict, list))
                fragments.append(f"{axis}{index}" if composite else _fragment(value, flag))
            suffix = "-".join(fragments)
            loops[suffix] = {"item": item, "key": suffix}
        return loops

    def _loop_data(self, raw: Any, name: str, where: KeyPath) -> tuple[Any, list[bool] | bool]:
        """Resolved foreach/matrix data, and whether (each of) its values came by reference."""
        data = self._resolve(raw, self.context, None, name, where)
        if isinstance(raw, list):
            return data, [interpolation.is_reference(value) for value in raw]
        return data, interpolation.is_reference(raw)

    def _resolve(
        self, value: Any, context: Context, field: str | None, stage: str, where: KeyPath
    ) -> Any:
        label = field if field is not None else where[-1]
        return self._guard(
            f"stage '{stage}': {label}",
            where,
            partial(interpolation.resolve, value, context.select, field),
        )

    def _guard(self, label: str, where: KeyPath, work: Callable[[], T]) -> T:
        try:
            return work()
        except PipelineError as exc:
            if exc.path is not None and exc.path != self.dvcfile:
                raise  # a broken params or vars file: its own path and line say it all
            raise self._error(f"{label}: {exc}", where) from None

    def _error(self, message: str, where: KeyPath) -> PipelineError:
        return PipelineError(message, path=self.dvcfile, line=self.doc.line(*where))


def _flags(referenced: list[bool] | bool, count: int) -> list[bool]:
    return [referenced] * count if isinstance(referenced, bool) else referenced


def _fragment(value: Any, referenced: bool) -> str:
    return str(value) if referenced else interpolation.to_str(value)
