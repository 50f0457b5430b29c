"""Data sources: outputs of `.dvc` files (`dvc add`) that a pipeline stage depends on.

`dvc repro` verifies each before the stages after it: unchanged, it says so; changed, the
new content is committed to the cache and the `.dvc` file records it, so the data a stage
used can be pushed and pulled like any output. executor does the same, finding the `.dvc`
files from the stages' deps (a dep that is the output, or lies inside it) without walking
the repository.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor import yamlio
from executor.confine import inside
from executor.dvcformat.entry import lock_item
from executor.dvcformat.lockfile import write_atomic
from executor.errors import PipelineError
from executor.hashing.hasher import Hasher
from executor.hashing.objects import HashInfo


@dataclass(frozen=True)
class DataSource:
    """One output of a `.dvc` file: repo-relative posix paths, as recorded."""

    dvcfile: str
    index: int  # its place in the file's `outs`
    path: str
    md5: str
    legacy: bool  # recorded by DVC 2.x (md5-dos2unix)
    cache: bool


def data_sources(root: Path, deps: Iterable[str]) -> list[DataSource]:
    """The `.dvc` outputs the repo-relative `deps` are, or lie inside, in first-seen order."""
    found: dict[tuple[str, int], DataSource] = {}
    looked: set[str] = set()
    for dep in deps:
        parts = dep.split("/")
        for n in range(len(parts), 0, -1):
            candidate = "/".join(parts[:n])
            if candidate in looked:
                continue
            looked.add(candidate)
            dvcfile = candidate + ".dvc"
            if (root / dvcfile).is_file():
                for source in _read(root, dvcfile):
                    if source.path == candidate:
                        found.setdefault((source.dvcfile, source.index), source)
    return list(found.values())


def _read(root: Path, dvcfile: str) -> list[DataSource]:
    data = yamlio.load_file(root / dvcfile, dvcfile) or {}
    outs = data.get("outs") if isinstance(data, Mapping) else None
    if not isinstance(outs, list) or data.get("deps") or data.get("cmd"):
        return []  # not a `dvc add` file (an import, or not DVC's at all)
    base = posixpath.dirname(dvcfile)
    found = []
    for index, item in enumerate(outs):
        if not isinstance(item, Mapping) or "md5" not in item or "path" not in item:
            continue
        path = posixpath.normpath(posixpath.join(base, str(item["path"])))
        legacy = "hash" not in item
        cache = bool(item.get("cache", True))
        found.append(DataSource(dvcfile, index, path, str(item["md5"]), legacy, cache))
    return found


def current(root: Path, source: DataSource, hasher: Hasher) -> HashInfo:
    """The source's content now, hashed as it was recorded (md5, or 2.x md5-dos2unix)."""
    path = inside(root, source.path)
    info = hasher.hash_path(path)
    if source.legacy:
        return HashInfo(hasher.legacy_md5(path), info.size, info.nfiles, info.isexec)
    return info


def record(root: Path, source: DataSource, info: HashInfo) -> None:
    """Write the new hash into the `.dvc` file in place, as DVC's dump does: values updated,
    other keys and comments kept; a 2.x entry becomes 3.x (its content changed)."""
    file = root / source.dvcfile
    data = yamlio.load_roundtrip(yamlio.read_text(file, source.dvcfile), source.dvcfile)
    try:
        item = data["outs"][source.index]
    except (KeyError, IndexError, TypeError):
        raise PipelineError("changed while executor ran; run again", path=source.dvcfile) from None
    fresh = lock_item(str(item["path"]), info)
    _update(item, {k: v for k, v in fresh.items() if k != "path"}, ("nfiles", "isexec"))
    write_atomic(file, yamlio.dump(data))


def _update(item: Any, values: Mapping[str, Any], optional: tuple[str, ...]) -> None:
    for key, value in values.items():
        item[key] = value
    for key in optional:
        if key not in values and key in item:
            del item[key]
