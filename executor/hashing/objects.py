"""How DVC 3 names and describes objects: md5 names, what dvc.lock records of a dep or out,
and the `.dir` manifest of a directory."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeGuard

from executor.errors import WorkspaceError

_HEX = frozenset("0123456789abcdef")


def is_md5(value: object, *, dir_ok: bool = True) -> TypeGuard[str]:
    """An object name: 32 lowercase hex digits, `.dir` after them for a directory (if
    `dir_ok`). Names from manifests, job specs, results and run entries are checked with it
    before any becomes a path."""
    if not isinstance(value, str):
        return False
    digits = value[:-4] if dir_ok and value.endswith(".dir") else value
    return len(digits) == 32 and _HEX.issuperset(digits)


@dataclass(frozen=True)
class HashInfo:
    """What dvc.lock records for one dep or out."""

    md5: str
    size: int
    nfiles: int | None = None
    isexec: bool = False

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


@dataclass(frozen=True)
class DirEntry:
    """One file of a directory, relative to it in posix form."""

    relpath: str
    md5: str
    size: int
    isexec: bool


def by_relpath(entry: DirEntry) -> str:
    """Sort key of a directory's entries, in the order of its manifest."""
    return entry.relpath


def manifest_bytes(entries: Iterable[DirEntry]) -> bytes:
    """The `.dir` object: sorted [{"md5", "relpath"}] as canonical JSON, no newline."""
    items = [{"md5": e.md5, "relpath": e.relpath} for e in sorted(entries, key=by_relpath)]
    return json.dumps(items, sort_keys=True).encode("utf-8")


def parse_manifest(data: bytes) -> list[tuple[str, str]]:
    """(relpath, md5) pairs of a `.dir` object; a relpath escaping the directory is refused."""
    pairs = []
    for item in json.loads(data):
        relpath, md5 = item["relpath"], item["md5"]
        parts = relpath.split("/") if isinstance(relpath, str) else [""]
        if any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise WorkspaceError(f"refusing .dir manifest entry {relpath!r}: not a safe path")
        if not is_md5(md5, dir_ok=False):
            raise WorkspaceError(f"refusing .dir manifest entry {relpath!r}: {md5!r} is not an md5")
        pairs.append((relpath, md5))
    return pairs
