"""File and directory hashes exactly as DVC 3 computes them.

A file is the md5 of its bytes. A directory is the md5 of its `.dir` manifest plus ".dir".
The files DVC lists are chosen in `executor.dvcformat.ignore`; unchanged files are looked up
in the state database (`executor.state`) instead of being read, and the rest are read by a
thread pool (hashlib releases the GIL, so large files hash in parallel).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeGuard

from executor.dvcformat.ignore import check_link, walk_files
from executor.errors import WorkspaceError
from executor.state import RACY_NS, StateDB

CHUNK = 1024 * 1024  # md5-dos2unix works per chunk of this size, as DVC does
READ_SIZE = 4 * 1024 * 1024
TEXT_PROBE = 512
_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"
_EXEC_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
_HEX = frozenset("0123456789abcdef")


def is_md5(value: object, *, dir_ok: bool = True) -> TypeGuard[str]:
    """An object name: 32 lowercase hex digits, `.dir` after them for a directory (if
    `dir_ok`). Names from manifests, job specs, results and run entries are checked with it
    before any becomes a path."""
    if not isinstance(value, str):
        return False
    digits = value[:-4] if dir_ok and value.endswith(".dir") else value
    return len(digits) == 32 and _HEX.issuperset(digits)
# Small files go to the pool in batches: one task per file costs more than hashing it.
_BATCH_FILES = 64
_BATCH_BYTES = 8 * 1024 * 1024
_INLINE_BYTES = 1024 * 1024

_Stat = tuple[str, os.stat_result]
Seen = dict[str, os.stat_result]  # absolute path -> its stat just before it was read


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


def file_md5(path: str | os.PathLike[str]) -> str:
    """md5 hex digest of the file's bytes."""
    return _md5(os.fspath(path))


def _md5(path: str, size_hint: int = -1, walked: os.stat_result | None = None) -> str:
    """`walked`: the file's stat when it was listed (and its links checked). The file opened
    must be that one: a stage running beside the hashing (`-j`) could otherwise swap it, or
    a folder above it, for a link to a host file between the check and the read."""
    digest = hashlib.md5(usedforsecurity=False)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if walked is not None:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (walked.st_dev, walked.st_ino):
                raise WorkspaceError(
                    f"'{path}' was replaced while it was being hashed; if nothing else "
                    "writes there, run again"
                )
        if 0 <= size_hint < READ_SIZE:
            # One read that also sees EOF: no buffer to allocate for a small file.
            data = os.read(fd, size_hint + 1)
            digest.update(data)
            if len(data) <= size_hint:
                return digest.hexdigest()
        buf = bytearray(READ_SIZE)
        view = memoryview(buf)
        while n := os.readv(fd, [buf]):
            digest.update(view[:n])
    finally:
        os.close(fd)
    return digest.hexdigest()


def istextblock(block: bytes) -> bool:
    """DVC's text heuristic: no NUL, and at most 30% of bytes outside printable ASCII."""
    if not block:
        return True
    if b"\x00" in block:
        return False
    return len(block.translate(None, _TEXT_CHARS)) / len(block) <= 0.30


class Digest(Protocol):
    """What hashlib.md5(data) returns, and Dos2UnixMd5(data)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class Dos2UnixMd5:
    """DVC 2.x `md5-dos2unix` of bytes fed in pieces of any size: each 1 MiB chunk of the
    content that looks like text has CRLF made LF (a CRLF across two chunks stays)."""

    def __init__(self, data: bytes = b"") -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._pending = bytearray()
        self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._pending += data
        while len(self._pending) >= CHUNK:
            self._feed(self._md5, bytes(self._pending[:CHUNK]))
            del self._pending[:CHUNK]

    def hexdigest(self) -> str:
        md5 = self._md5.copy()
        if self._pending:
            self._feed(md5, bytes(self._pending))
        return md5.hexdigest()

    @staticmethod
    def _feed(md5: Any, chunk: bytes) -> None:
        md5.update(chunk.replace(b"\r\n", b"\n") if istextblock(chunk[:TEXT_PROBE]) else chunk)


def file_md5_dos2unix(path: str | os.PathLike[str]) -> str:
    """DVC 2.x `md5-dos2unix` of the file's content."""
    digest = Dos2UnixMd5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_bytes(entries: Iterable[DirEntry]) -> bytes:
    """The `.dir` object: sorted [{"md5", "relpath"}] as canonical JSON, no newline."""
    items = [{"md5": e.md5, "relpath": e.relpath} for e in sorted(entries, key=_by_relpath)]
    return json.dumps(items, sort_keys=True).encode("utf-8")


def _by_relpath(entry: DirEntry) -> str:
    return entry.relpath


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


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def _isexec(st: os.stat_result) -> bool:
    return bool(st.st_mode & _EXEC_BITS)


def _hash_batch(batch: Sequence[_Stat]) -> list[str]:
    return [_md5(path, st.st_size, st) for path, st in batch]


class Hasher:
    """Hashes files and directories, remembering unchanged files between runs.

    `root` is the repository whose `.dvcignore` files apply; without it (or for a path outside
    it) only `.git`, `.hg`, `.dvc` and nested DVC repositories are skipped. `state_path` is the
    SQLite state cache (e.g. `.dvc/tmp/executor/state.sqlite`), written at `close()` and every
    few thousand files. Safe to share between threads.
    """

    def __init__(
        self,
        state_path: Path | None = None,
        workers: int | None = None,
        root: Path | None = None,
        within: tuple[Path, ...] | None = None,
        fresh_after: int | None = None,
    ) -> None:
        self.state = StateDB(state_path) if state_path is not None else None
        self.workers = workers or min(32, (os.cpu_count() or 1) * 4)
        self.root = os.path.abspath(root) if root is not None else None
        # Where symlinks among hashed files may lead (see dvcignore.walk_files); None: anywhere.
        self.within = tuple(os.path.realpath(p) for p in within) if within is not None else None
        # Since when no .dvcignore or nested .dvc may have changed (dvcignore._check_settled).
        self.fresh_after = fresh_after
        self.files_read = 0  # files whose content was read, for tests and benchmarks
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()

    def hash_file(self, path: Path, seen: Seen | None = None) -> HashInfo:
        """The file's md5, size and exec bit (a link's target's)."""
        (info,) = self.hash_many([path], seen)
        return info

    def hash_many(self, paths: Sequence[Path], seen: Seen | None = None) -> list[HashInfo]:
        """hash_path of each, reading the files that changed in parallel. `seen` receives the
        stat of each file read now (as it was before the read), by absolute path; not of one
        whose md5 the state database remembered, which nobody has read against it."""
        seen_ns = self._seen_ns()
        if self.within is not None:
            for given in paths:
                if os.path.islink(given):
                    check_link(os.fspath(given), self.within)
        stats = [(os.path.abspath(p), os.stat(p)) for p in paths]
        files = [(p, st) for p, st in stats if not stat.S_ISDIR(st.st_mode)]
        for p, st in files:
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(f"'{p}' is not a regular file; DVC cannot hash it")
        md5s = self._md5s(files, seen_ns, read=seen)
        return [
            self.hash_tree(Path(p), seen)[0]
            if stat.S_ISDIR(st.st_mode)
            else HashInfo(md5s[p], st.st_size, isexec=_isexec(st))
            for p, st in stats
        ]

    def hash_tree(
        self, path: Path, seen: Seen | None = None
    ) -> tuple[HashInfo, list[DirEntry], bytes]:
        """The directory's hash, its files sorted by relpath, and its `.dir` object (`seen`:
        as in hash_many)."""
        seen_ns = self._seen_ns()
        walked = walk_files(os.path.abspath(path), self.root, self.within, self.fresh_after)
        for rel, p, _ in walked:
            if not rel.isascii() and not _utf8(rel):
                shown = os.fsencode(p).decode("utf-8", "backslashreplace")
                raise WorkspaceError(f"'{shown}' is not a UTF-8 name; DVC cannot track it")
        stats = [(p, st) for _, p, st in walked]
        md5s = self._md5s(stats, seen_ns, under=os.path.abspath(path), read=seen)
        entries = [DirEntry(rel, md5s[p], st.st_size, _isexec(st)) for rel, p, st in walked]
        entries.sort(key=_by_relpath)
        data = manifest_bytes(entries)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir"
        info = HashInfo(md5=md5, size=sum(e.size for e in entries), nfiles=len(entries))
        return info, entries, data

    def hash_path(self, path: Path) -> HashInfo:
        """hash_tree's HashInfo for a directory, hash_file's otherwise."""
        if os.path.isdir(path):
            return self.hash_tree(path)[0]
        return self.hash_file(path)

    @contextmanager
    def settled(self) -> Iterator[None]:
        """Within it (on this thread), files were written by a process that has exited, as a
        stage's outputs after its container stopped: their md5s are remembered even if they
        were modified a moment ago (the racy-timestamp rule guards against live writers)."""
        self._local.settled = True
        try:
            yield
        finally:
            self._local.settled = False

    def _seen_ns(self) -> int:
        now = time.time_ns()
        return now + RACY_NS if getattr(self._local, "settled", False) else now

    def remember(self, files: Sequence[tuple[Path, str]]) -> None:
        """Record md5s known without reading the files (just copied from the cache), in one
        state transaction."""
        if self.state is not None and files:
            # We wrote them and are done: no writer can still change them unseen.
            seen_ns = time.time_ns() + RACY_NS
            rows = [(os.path.abspath(path), os.stat(path), md5) for path, md5 in files]
            self.state.put_many(rows, seen_ns)

    def legacy_md5(self, path: Path) -> str:
        """The 2.x `md5-dos2unix` hash, for dvc.lock entries without `hash:`.

        Rarely needed (a repository last run by DVC 2), so never cached: every file is read.
        """
        if not path.is_dir():
            return file_md5_dos2unix(path)
        _, entries, _ = self.hash_tree(path)
        legacy = [
            DirEntry(e.relpath, file_md5_dos2unix(path / e.relpath), e.size, e.isexec)
            for e in entries
        ]
        return hashlib.md5(manifest_bytes(legacy)).hexdigest() + ".dir"

    def close(self) -> None:
        """Flush the state cache and stop the worker threads."""
        if self.state is not None:
            self.state.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def __enter__(self) -> Hasher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _md5s(
        self, files: list[_Stat], seen_ns: int, under: str | None = None, read: Seen | None = None
    ) -> dict[str, str]:
        """md5 of each file: remembered if unchanged, read otherwise (then remembered); `read`
        receives the stats of those read."""
        known = self.state.get_many(files, under) if self.state is not None else {}
        todo = [(p, st) for p, st in files if p not in known]
        if read is not None:
            read.update(todo)
        if not todo:
            return known
        digests = self._read(todo)
        with self._lock:
            self.files_read += len(todo)
            self.bytes_read += sum(st.st_size for _, st in todo)
        fresh = {p: md5 for (p, _), md5 in zip(todo, digests, strict=True)}
        if self.state is not None:
            self.state.put_many(((p, st, fresh[p]) for p, st in todo), seen_ns)
        known.update(fresh)
        return known

    def _read(self, todo: list[_Stat]) -> list[str]:
        total = sum(st.st_size for _, st in todo)
        if len(todo) == 1 or (total <= _INLINE_BYTES and len(todo) <= _BATCH_FILES):
            return _hash_batch(todo)
        batches: list[list[_Stat]] = [[]]
        size = 0
        order = sorted(range(len(todo)), key=lambda i: -todo[i][1].st_size)  # largest first
        for item in (todo[i] for i in order):
            if len(batches[-1]) >= _BATCH_FILES or size >= _BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += item[1].st_size
        digests = [md5 for done in self._executor().map(_hash_batch, batches) for md5 in done]
        result = [""] * len(todo)
        for i, md5 in zip(order, digests, strict=True):
            result[i] = md5
        return result

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="hash")
            return self._pool
