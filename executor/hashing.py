"""File and directory hashes exactly as DVC 3 computes them (spec/dvc-compat.md §3).

STUB: replaced by the hashing work (state cache, parallel directories); the API stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024
IGNORED_NAMES = frozenset({".git", ".hg", ".dvc"})


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


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_bytes(entries: list[DirEntry]) -> bytes:
    """The `.dir` object: sorted [{"md5", "relpath"}] as canonical JSON, no newline."""
    items = [{"md5": e.md5, "relpath": e.relpath} for e in sorted(entries, key=lambda e: e.relpath)]
    return json.dumps(items, sort_keys=True).encode("utf-8")


def parse_manifest(data: bytes) -> list[tuple[str, str]]:
    """(relpath, md5) pairs of a `.dir` object."""
    return [(item["relpath"], item["md5"]) for item in json.loads(data)]


class Hasher:
    """Hashes files and directories, remembering unchanged files between runs."""

    def __init__(self, state_path: Path | None = None, workers: int | None = None) -> None:
        self.state_path = state_path
        self.workers = workers

    def hash_file(self, path: Path) -> HashInfo:
        st = path.stat()
        return HashInfo(
            md5=file_md5(path),
            size=st.st_size,
            isexec=bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)),
        )

    def hash_tree(self, path: Path) -> tuple[HashInfo, list[DirEntry], bytes]:
        entries: list[DirEntry] = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d not in IGNORED_NAMES]
            for name in filenames:
                full = Path(dirpath, name)
                info = self.hash_file(full)
                rel = full.relative_to(path).as_posix()
                entries.append(DirEntry(rel, info.md5, info.size, info.isexec))
        entries.sort(key=lambda e: e.relpath)
        data = manifest_bytes(entries)
        md5 = hashlib.md5(data).hexdigest() + ".dir"
        info = HashInfo(md5=md5, size=sum(e.size for e in entries), nfiles=len(entries))
        return info, entries, data

    def hash_path(self, path: Path) -> HashInfo:
        if path.is_dir():
            return self.hash_tree(path)[0]
        return self.hash_file(path)

    def close(self) -> None:
        """Flush the state cache."""
