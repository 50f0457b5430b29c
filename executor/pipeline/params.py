"""Params files and the `params` block of a dvc.lock entry, as DVC 3 builds them.

DVC reads `.json` with json, `.toml` as TOML and anything else as YAML 1.2 (ruamel safe), an
empty or false document counting as `{}` (`dvc/utils/serialize`). Dotted keys are looked up as
paths and stored flat (`prep.size: 10`), whole dicts nested, a wholly tracked file in full; the
default `params.yaml` comes first, then the other files by path, top-level keys sorted
(`dvc/stage/serialize.py: _serialize_params_values`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from executor.errors import PipelineError
from executor.pipeline import yamldoc
from executor.pipeline.model import DEFAULT_PARAMS_FILE, ParamSpec, Stage
from executor.pipeline.model import repo_path as in_wdir

_PLAIN = (str, int, float, bool, type(None))
_FNMATCH = frozenset("*?[")
_MISSING = object()


def merge_params(entries: Sequence[Any]) -> tuple[ParamSpec, ...]:
    """A stage's `params` list as DVC's `_merge_params` reads it.

    Plain strings are keys of `params.yaml` unless that file is wholly tracked; `{file: [keys]}`
    adds keys of `file`; `{file: null}` or `{file: []}` tracks the whole file and drops any
    specific keys given for it.
    """
    wholly: set[str] = set()
    for entry in entries:
        if isinstance(entry, Mapping):
            wholly.update(name for name, keys in entry.items() if not keys)
    merged: dict[str, list[str] | None] = {}
    for entry in entries:
        if isinstance(entry, str):
            if DEFAULT_PARAMS_FILE not in wholly:
                _add(merged, DEFAULT_PARAMS_FILE, [entry])
            continue
        if not isinstance(entry, Mapping):
            raise PipelineError(f"params entries must be strings or mappings, got {_type(entry)}")
        for name, keys in entry.items():
            if not isinstance(name, str):
                raise PipelineError(f"params file names must be strings, got {_type(name)}")
            if name in wholly:
                merged[name] = None
            elif isinstance(keys, list) and all(isinstance(key, str) for key in keys):
                _add(merged, name, keys)
            else:
                raise PipelineError(f"expected a list of keys for params file '{name}'")
    return tuple(
        ParamSpec(name, None if keys is None else tuple(dict.fromkeys(keys)))
        for name, keys in merged.items()
    )


_merge_params = merge_params  # DVC's name, for readers coming from dvc/dependency/__init__.py


def _add(merged: dict[str, list[str] | None], name: str, keys: list[str]) -> None:
    current = merged.setdefault(name, [])
    assert current is not None  # wholly tracked files never reach here
    current.extend(keys)


class ParamsReader:
    """Reads the params and vars files of one repository, parsing each file once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._documents: dict[str, Any] = {}
        self._checked: set[tuple[str, str]] = set()  # (file, key) already found plain
        self._str_keyed: dict[int, bool] = {}  # dicts of the documents above (kept alive)

    def exists(self, repo_path: str) -> bool:
        """Whether the repo-relative path names a file."""
        return (self.root / repo_path).is_file()

    def document(self, repo_path: str) -> Any:
        """The parsed file at a repo-relative path (`{}` for an empty one)."""
        if repo_path not in self._documents:
            self._documents[repo_path] = self._parse(repo_path)
        return self._documents[repo_path]

    def values(self, stage: Stage) -> dict[str, dict[str, Any]]:
        """The `params` block of `stage`'s lock entry. Values are shared: do not mutate them."""
        block: dict[str, dict[str, Any]] = {}
        for spec in sorted(stage.params, key=lambda spec: spec.file):
            repo_path = stage.repo_path(spec.file)
            try:
                picked = self._pick(repo_path, spec.keys)
            except PipelineError as exc:
                raise PipelineError(f"stage '{stage.address}': {exc}") from None
            except RecursionError:
                raise PipelineError(
                    f"stage '{stage.address}': {yamldoc.too_deep(repo_path)}"
                ) from None
            try:
                block[spec.file] = {key: picked[key] for key in sorted(picked)}
            except TypeError:
                raise PipelineError(
                    f"stage '{stage.address}': '{repo_path}' mixes string and other keys"
                ) from None
        if DEFAULT_PARAMS_FILE in block:
            block = {DEFAULT_PARAMS_FILE: block.pop(DEFAULT_PARAMS_FILE), **block}
        return block

    def differences(self, wdir: str, block: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """`file:key` of each value in a lock entry's `params` block (files relative to
        `wdir`) that these files do not hold."""
        wrong = []
        for name, values in block.items():
            repo_path = in_wdir(wdir, name)
            for key, value in values.items():
                try:
                    found = _lookup(self.document(repo_path), str(key), repo_path, self._str_keyed)
                except PipelineError:
                    found = _MISSING
                if found is _MISSING or not same_values(found, value):
                    wrong.append(f"{name}:{key}")
        return wrong

    def typed(self, wdir: str, block: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """A `params` block that came through JSON (a job spec) with the files' values put
        back where they are the same: JSON makes a key `-2` the string `'-2'`, DVC locks
        it as the int. Values the files do not hold stay as they came."""
        typed: dict[str, dict[str, Any]] = {}
        for name, values in block.items():
            repo_path = in_wdir(wdir, name)
            try:
                document = self.document(repo_path)
            except PipelineError:
                document = _MISSING
            typed[name] = {}
            for key, value in values.items():
                try:
                    found = _lookup(document, str(key), repo_path, self._str_keyed)
                except PipelineError:
                    found = _MISSING
                same = found is not _MISSING and same_values(found, value)
                typed[name][key] = found if same else value
        return typed

    def _pick(self, repo_path: str, keys: tuple[str, ...] | None) -> dict[Any, Any]:
        if not self.exists(repo_path):
            folder = posixpath.dirname(repo_path)
            if folder and not (self.root / folder).is_dir():
                raise PipelineError(
                    f"params file '{repo_path}' does not exist: there is no folder '{folder}'"
                    " (check the stage's wdir)"
                )
            raise PipelineError(f"params file '{repo_path}' does not exist")
        document = self.document(repo_path)
        if keys is None:
            if not isinstance(document, dict):
                raise PipelineError(f"params file '{repo_path}' is not a mapping")
            for key in document:
                if not isinstance(key, str):  # dvc.lock's schema: `expected str @ params`
                    raise PipelineError(
                        f"params file '{repo_path}' has a top-level key {key!r} that is not a "
                        "string; DVC refuses it when it tracks the whole file: quote it"
                    )
            picked = document
        else:
            picked = {key: _lookup(document, key, repo_path, self._str_keyed) for key in keys}
        for key, value in picked.items():
            if (repo_path, key) not in self._checked:
                check_plain(value, f"{repo_path}:{key}")
                self._checked.add((repo_path, key))
        return picked

    def _parse(self, repo_path: str) -> Any:
        path = self.root / repo_path
        real = os.path.realpath(path)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise PipelineError(f"'{repo_path}' leads outside of the repository")
        if path.is_dir():
            raise PipelineError(f"'{repo_path}' is a directory, expected a params file")
        suffix = posixpath.splitext(repo_path)[1].lower()
        if suffix not in (".json", ".toml", ".py"):
            return yamldoc.read(path, repo_path).data or {}
        if suffix == ".py":
            raise PipelineError(f"'{repo_path}': Python params files are not supported")
        try:
            text = path.read_text(encoding="utf-8")
            if suffix == ".json":
                return json.loads(text) or {}
            return tomllib.loads(text) or {}
        except (ValueError, OSError) as exc:  # JSONDecodeError and TOMLDecodeError included
            raise PipelineError(f"unable to read '{repo_path}': {exc}") from None
        except RecursionError:
            raise yamldoc.too_deep(repo_path) from None


def same_values(a: Any, b: Any) -> bool:
    """Whether two params values are the same once sent as JSON (as a job spec sends them):
    true is not 1, nor 1 the same as 1.0, but the key -2 is the key '-2'."""
    return _as_json(_through_json(a)) == _as_json(_through_json(b))


def _through_json(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def params_values(root: Path, stage: Stage) -> dict[str, dict[str, Any]]:
    """The `params` block of `stage`'s dvc.lock entry (one-off; use ParamsReader for many)."""
    return ParamsReader(root).values(stage)


MAX_DEPTH = 300  # DVC itself fails (RecursionError) on params nested ~450 levels deep


def check_plain(value: Any, where: str) -> None:
    """Reject values DVC cannot carry (dates, binary, sets) or nest (more than MAX_DEPTH
    levels), naming `file:dotted.path`."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, here, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise PipelineError(
                    f"'{where}' is nested more than {MAX_DEPTH} levels deep; flatten it"
                )
            if isinstance(node, dict):
                _check_keys(node, here)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((item, f"{here}.{key}", depth + 1) for key, item in items)
        elif not isinstance(node, _PLAIN):
            raise PipelineError(f"Unsupported value of type '{_type(node)}' in '{here}'")


def _check_keys(node: dict[Any, Any], where: str) -> None:
    """Keys the run-cache key can carry: scalars, of types json's sort_keys can order."""
    if all(type(name) is str for name in node):
        return
    for name in node:
        if not isinstance(name, _PLAIN):  # a date or binary key
            raise PipelineError(
                f"Unsupported key of type '{_type(name)}' in '{where}': {name!r}; DVC cannot "
                "carry it either: quote it"
            )
    try:  # the run-cache key sorts them (json sort_keys), as DVC's does
        sorted(node)
    except TypeError:
        raise PipelineError(
            f"the keys of '{where}' mix types that cannot be sorted "
            f"({', '.join(sorted({_type(name) for name in node}))}); DVC fails on them too: "
            "make them all strings or all numbers"
        ) from None


def _lookup(
    document: Any, key: str, repo_path: str, str_keyed: dict[int, bool] | None = None
) -> Any:
    """The value of one params key, found as DVC finds it: `dpath.get(doc, key, ".")`.

    Each dot-separated part is an fnmatch pattern matched against the keys (and list indices)
    at its depth, exactly one node must match, and that node (a whole subtree, if it is one)
    is the value. As in dpath, an int key or list index matches a part that `int()` reads as
    the same number (`-1` is the last item), other keys match through `str()` when the part
    is not a number (`True`, never `true`), and float or null keys match nothing.
    `str_keyed` caches, by id, which dicts of `document` have only string keys.
    """
    if not key or key == "/":  # dpath's own shortcuts
        return document
    parts = key.lstrip(".").split(".")
    if "**" in parts:
        found = _deep_matches(document, parts)
    else:
        found = [document]
        for part in parts:
            found = [child for node in found for child in _children(node, part, str_keyed)]
    if not found:
        raise PipelineError(f"param '{key}' is missing from '{repo_path}'")
    if len(found) > 1:
        raise PipelineError(
            f"param '{key}' matches more than one value in '{repo_path}'; DVC takes a glob "
            "only when it matches exactly one: make the pattern narrower"
        )
    return found[0]


def _children(node: Any, part: str, str_keyed: dict[int, bool] | None) -> list[Any]:
    """The children of `node` whose key or index matches the pattern `part`."""
    if isinstance(node, dict):
        if not _FNMATCH & set(part) and _only_str_keys(node, str_keyed):
            return [node[part]] if part in node else []
        return [value for name, value in node.items() if _part_matches(name, part)]
    if isinstance(node, list):
        size = len(node)
        return [value for index, value in enumerate(node) if _part_matches(index, part, size)]
    return []


def _only_str_keys(node: dict[Any, Any], cache: dict[int, bool] | None) -> bool:
    if cache is None:
        return all(type(name) is str for name in node)
    known = cache.get(id(node))
    if known is None:
        known = cache[id(node)] = all(type(name) is str for name in node)
    return known


def _part_matches(name: Any, part: str, size: int | None = None) -> bool:
    """dpath's `segments.match` for one segment (`size`: the list's, for negative indices)."""
    if isinstance(name, int):  # bools too, as in dpath
        try:
            wanted = int(part)
        except ValueError:
            name = str(name)
        else:
            if name == wanted or (size is not None and size + wanted == name):
                return True
    if not isinstance(name, str):
        return False  # fnmatch fails on floats, nulls and ints that did not match as numbers
    return fnmatch.fnmatchcase(name, part)


def _deep_matches(document: Any, parts: list[str]) -> list[Any]:
    """Matches of a pattern holding `**` (any number of parts, at most one `**`)."""
    if parts.count("**") > 1:
        raise PipelineError(f"only one '**' is allowed in a params key: '{'.'.join(parts)}'")
    star = parts.index("**")
    found: list[Any] = []
    stack: list[tuple[Any, tuple[tuple[Any, int | None], ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        items: list[tuple[Any, int | None, Any]]
        if isinstance(node, dict):
            items = [(name, None, value) for name, value in node.items()]
        elif isinstance(node, list):
            items = [(index, len(node), value) for index, value in enumerate(node)]
        else:
            continue
        for name, size, value in items:
            here = (*path, (name, size))
            if _path_matches(here, parts, star):
                found.append(value)
            stack.append((value, here))
    return found


def _path_matches(path: tuple[tuple[Any, int | None], ...], parts: list[str], star: int) -> bool:
    if len(path) >= len(parts):
        glob = parts[:star] + ["*"] * (len(path) - len(parts) + 1) + parts[star + 1 :]
    elif len(path) == len(parts) - 1:
        glob = parts[:star] + parts[star + 1 :]
    else:
        return False
    return all(_part_matches(name, g, size) for (name, size), g in zip(path, glob, strict=True))


def _as_json(value: Any) -> str | None:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _type(value: Any) -> str:
    return type(value).__name__
