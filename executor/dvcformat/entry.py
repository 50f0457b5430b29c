"""A stage's dvc.lock entry, and the run-cache key and value computed from it.

The entry is built from hashes alone, so the coordinator can compute a downstream stage's key
from the output hashes its upstream stage recorded, without touching any bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from executor.hashing.objects import HashInfo

Entry = dict[str, Any]


def lock_item(path: str, info: HashInfo, *, legacy: bool = False) -> dict[str, Any]:
    """One dep/out item: path, hash (3.x only), md5, size, nfiles (dirs), isexec (if set)."""
    item: dict[str, Any] = {"path": path}
    if not legacy:
        item["hash"] = "md5"
    item["md5"] = info.md5
    item["size"] = info.size
    if info.nfiles is not None:
        item["nfiles"] = info.nfiles
    if info.isexec:
        item["isexec"] = True
    return item


def build_entry(
    cmd: str | list[str],
    deps: list[dict[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    outs: list[dict[str, Any]],
) -> Entry:
    """cmd, then deps, params, outs; items sorted by their verbatim path; empty parts left out."""
    entry: Entry = {"cmd": cmd}
    if deps:
        entry["deps"] = sorted(deps, key=lambda item: str(item["path"]))
    if params:
        entry["params"] = {name: dict(values) for name, values in params.items()}
    if outs:
        entry["outs"] = sorted(outs, key=lambda item: str(item["path"]))
    return entry


def _without_sizes(value: Any) -> Any:
    """Drop every mapping key named size or nfiles, at any depth (DVC's dict_filter)."""
    if isinstance(value, Mapping):
        return {k: _without_sizes(v) for k, v in value.items() if k not in ("size", "nfiles")}
    if isinstance(value, list | tuple):
        return [_without_sizes(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, ', ' and ': ' separators, ASCII escapes, no newline (DVC's dict_hash)."""
    return json.dumps(value, sort_keys=True)


def key_document(entry: Mapping[str, Any]) -> Any:
    """The document hashed into the run-cache key: outs reduced to their paths."""
    doc = dict(entry)
    doc["outs"] = [item["path"] for item in entry.get("outs", [])]
    return _without_sizes(doc)


def run_key(entry: Mapping[str, Any]) -> str:
    """sha256 of the canonical key document: the same for the same inputs."""
    return hashlib.sha256(canonical_json(key_document(entry)).encode("utf-8")).hexdigest()


def stage_key(
    cmd: str | list[str],
    deps: Iterable[Mapping[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    out_paths: Iterable[str],
) -> str:
    """The run-cache key of a stage about to run: DVC's, from its cmd, dep hashes, params
    and out paths (what the key covers is known before any output is)."""
    outs = [{"path": path} for path in out_paths]
    return run_key(build_entry(cmd, [dict(d) for d in deps], params, outs))


def run_value(entry: Mapping[str, Any]) -> str:
    """sha256 of the canonical full entry: names the entry file under its key."""
    doc = _without_sizes(dict(entry))
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


_SCALARS = (str, int, float, type(None))  # bool is an int


def plain(value: Any) -> Any:
    """Round-trip YAML containers and scalars as plain dicts, lists and builtins."""
    if isinstance(value, Mapping):
        # Keys keep their scalar type: DVC locks a params key -2 as `-2:`, not `'-2':`.
        return {plain(k) if isinstance(k, _SCALARS) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value
