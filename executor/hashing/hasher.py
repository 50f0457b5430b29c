"""Hasher: the hashes of files and directories, remembering unchanged files between runs.

Unchanged files are looked up in the state database (`executor.state`) instead of being read;
the rest are read by a `ReadPool`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from executor.confine import check_link
from executor.errors import WorkspaceError
from executor.hashing.digests import file_md5_dos2unix
from executor.hashing.ignore import walk_files
from executor.hashing.objects import DirEntry, HashInfo, by_relpath, manifest_bytes
from executor.hashing.readpool import ReadPool, StatedFile
from executor.state import RACY_NS, StateDB

_EXEC_BITS = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH

Seen = dict[str, os.stat_result]  # absolute path -> its stat just before it was read


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def _isexec(st: os.stat_result) -> bool:
    return bool(st.st_mode & _EXEC_BITS)


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
        self.reads = ReadPool(workers or min(32, (os.cpu_count() or 1) * 4))
        self.root = os.path.abspath(root) if root is not None else None
        # Where symlinks among hashed files may lead (see dvcignore.walk_files); None: anywhere.
        self.within = tuple(os.path.realpath(p) for p in within) if within is not None else None
        # Since when no .dvcignore or nested .dvc may have changed (dvcignore._check_settled).
        self.fresh_after = fresh_after
        self.files_read = 0  # files whose content was read, for tests and benchmarks
        self.bytes_read = 0
        self._lock = threading.Lock()
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
        entries.sort(key=by_relpath)
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
        self.reads.close()

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
        self,
        files: list[StatedFile],
        seen_ns: int,
        under: str | None = None,
        read: Seen | None = None,
    ) -> dict[str, str]:
        """md5 of each file: remembered if unchanged, read otherwise (then remembered); `read`
        receives the stats of those read."""
        known = self.state.get_many(files, under) if self.state is not None else {}
        todo = [(p, st) for p, st in files if p not in known]
        if read is not None:
            read.update(todo)
        if not todo:
            return known
        digests = self.reads.md5s(todo)
        with self._lock:
            self.files_read += len(todo)
            self.bytes_read += sum(st.st_size for _, st in todo)
        fresh = {p: md5 for (p, _), md5 in zip(todo, digests, strict=True)}
        if self.state is not None:
            self.state.put_many(((p, st, fresh[p]) for p, st in todo), seen_ns)
        known.update(fresh)
        return known
