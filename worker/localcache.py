"""The worker's local cache: objects fetched from the store (verified) onto local disk under a
size limit, least recently used evicted first, and materialised into workspaces.

Inputs are hardlinked, read-only (0444), so placing a 10 GB dataset costs no copy; where a
link is impossible (another filesystem, link limit) or the file must be executable (the mode
belongs to the inode the cache shares), it is copied instead. The worker bind-mounts every
linked input read-only into the stage's container, so the stage can neither `chmod` nor write
nor link it. Behind that: each use records every object's inode change time and, when the job
is done, drops any object whose inode changed; a job that died is followed by a re-hash of
the objects it had linked (`verify_objects`). A damaged object is never served again.

A job does not list the whole cache: the bytes it holds are kept in a file beside the objects
(`usage`), brought up to date by each job and recounted from disk at the worker's start and
at each of its maintenance passes; the objects' order of use (their mtimes) is read from disk
only when the cache must evict.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from executor.errors import WorkspaceError
from executor.hashing.digests import file_md5
from executor.hashing.objects import is_md5, parse_manifest
from executor.store.base import ObjectStore
from executor.store.local import OBJECT_MODE, LocalStore
from executor.store.movers import fetch_objects

log = logging.getLogger(__name__)
LINK_ERRORS = frozenset({18, 1, 31, 95})  # EXDEV, EPERM, EMLINK, EOPNOTSUPP
USAGE_NAME = "usage"  # in the cache's root: the bytes of its objects


@dataclass(frozen=True)
class Placement:
    """One file to put into a workspace: its path there (posix) and its object."""

    relpath: str
    md5: str
    isexec: bool = False
    copy: bool = False  # a writable copy of its own (a persist output the stage changes)


class LocalCache:
    """Objects of `store`, kept under `root` in DVC's layout, at most `max_bytes` of them
    (objects in use by a workspace are never evicted, so the limit may be passed briefly)."""

    def __init__(self, root: Path, store: ObjectStore, max_bytes: int, *, jobs: int = 16) -> None:
        self.objects = LocalStore(root)
        self.store = store
        self.max_bytes = max_bytes
        self.jobs = jobs
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._lru: OrderedDict[str, int] | None = None  # md5 -> size, oldest first: on demand
        used = _read_usage(root)
        self.size = used if used is not None else self._load()

    def _load(self) -> int:
        """Read the objects, their sizes and order of use from disk; the bytes they hold."""
        lru = OrderedDict(_scan(self.objects.root))
        with self._lock:
            self._lru, self.size = lru, sum(lru.values())
            _write_usage(self.objects.root, self.size)
            return self.size

    def fetch(self, md5s: Iterable[str]) -> None:
        """Make the objects present locally: missing ones downloaded in parallel, verified."""
        absent = [m for m in set(md5s) if not self.objects.object_path(m).is_file()]
        if not absent:
            return
        fetch_objects(self.store, self.objects, absent, self.jobs, None)
        for md5 in absent:
            self._arrived(md5)
        with self._lock:
            _write_usage(self.objects.root, self.size)

    def _arrived(self, md5: str) -> None:
        size = self.objects.object_path(md5).stat().st_size
        with self._lock:
            if self._lru is None or md5 not in self._lru:
                self.size += size
            if self._lru is not None:
                self._lru[md5] = size

    def expand(
        self, relpath: str, md5: str, isexec: bool = False, executables: Iterable[str] = ()
    ) -> list[Placement]:
        """The files an input is: itself, or for a `.dir` object every file its manifest
        lists (those named in `executables` with their exec bit, which manifests lack)."""
        if not md5.endswith(".dir"):
            return [Placement(relpath, md5, isexec)]
        self.fetch([md5])
        manifest = parse_manifest(self.objects.get_bytes(md5))
        run = set(executables)
        return [Placement(posixpath.join(relpath, rel), m, rel in run) for rel, m in manifest]

    @contextmanager
    def materialised(self, workspace: Path, placements: list[Placement]) -> Iterator[None]:
        """Place the files in `workspace` for the duration of the block; afterwards drop any
        object the job may have changed, and evict down to the size limit."""
        md5s = {p.md5 for p in placements}
        with self._lock:
            self._pins.update(md5s)
        changes: dict[str, int] = {}
        try:
            self.fetch(md5s)
            changes = self._place(workspace, placements)
            yield
        finally:
            self._drop_changed(changes)
            with self._lock:
                self._pins.subtract(md5s)
                self._pins += Counter()  # drop zero counts
            self.evict()

    def _place(self, workspace: Path, placements: list[Placement]) -> dict[str, int]:
        """Link or copy every file; the inode change time of each object afterwards."""
        md5s = {p.md5 for p in placements}
        for md5 in md5s:
            os.utime(self.objects.object_path(md5))  # most recently used, also after a restart
            with self._lock:
                if self._lru is not None and md5 in self._lru:
                    self._lru.move_to_end(md5)
        for placement in placements:
            dest = _inside(workspace, placement.relpath)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = self.objects.object_path(placement.md5)
            if placement.copy:
                shutil.copyfile(src, dest)
                os.chmod(dest, 0o755 if placement.isexec else 0o644)
            elif placement.isexec or not _link(src, dest):
                shutil.copyfile(src, dest)
                os.chmod(dest, 0o555 if placement.isexec else OBJECT_MODE)
        return {m: self.objects.object_path(m).stat().st_ctime_ns for m in md5s}

    def _drop_changed(self, changes: dict[str, int]) -> None:
        for md5, ctime in changes.items():
            path = self.objects.object_path(md5)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_ctime_ns != ctime or st.st_mode & 0o777 != OBJECT_MODE:
                log.warning("object %s may have been changed through a workspace; dropped", md5)
                self._remove(md5)

    def evict(self) -> int:
        """Remove least recently used objects not in use until under the limit; bytes freed."""
        freed = 0
        with self._lock:
            if self.size <= self.max_bytes:
                return 0
        self._load()  # the exact sizes and order of use, from disk
        with self._lock:
            assert self._lru is not None
            victims = []
            for md5, size in self._lru.items():
                if self.size - freed <= self.max_bytes:
                    break
                if not self._pins[md5]:
                    victims.append(md5)
                    freed += size
        for md5 in victims:
            self._remove(md5)
        return freed

    def _remove(self, md5: str) -> None:
        path = self.objects.object_path(md5)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        path.unlink(missing_ok=True)
        with self._lock:
            if self._lru is not None:
                self._lru.pop(md5, None)
            self.size = max(0, self.size - size)
            _write_usage(self.objects.root, self.size)


def verify_objects(root: Path, md5s: Iterable[str]) -> list[str]:
    """Hash the objects `md5s` of the local cache at `root` again; remove (and return) those
    whose content or mode is not what they should be."""
    objects = LocalStore(root)
    dropped = []
    for md5 in md5s:
        if not is_md5(md5, dir_ok=False):
            continue
        path = objects.object_path(md5)
        try:
            intact = path.stat().st_mode & 0o777 == OBJECT_MODE and file_md5(path) == md5
        except FileNotFoundError:
            continue
        if not intact:
            path.unlink(missing_ok=True)
            dropped.append(md5)
    return dropped


def _link(src: Path, dest: Path) -> bool:
    try:
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        os.link(src, dest)
    except OSError as exc:
        if exc.errno in LINK_ERRORS:
            return False
        raise
    return True


def _inside(workspace: Path, relpath: str) -> Path:
    norm = posixpath.normpath(relpath)
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise WorkspaceError(f"input path '{relpath}' escapes the workspace")
    dest = workspace / norm
    real_root, real = os.path.realpath(workspace), os.path.realpath(dest.parent)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise WorkspaceError(f"input path '{relpath}' escapes the workspace through a link")
    return dest


def bytes_used(root: Path) -> int:
    """Bytes of the objects in the local cache at `root`, counted on disk (and so recorded
    for its next job: what a killed job fetched is counted again)."""
    used = sum(size for _, size in _scan(root))
    if root.is_dir():
        _write_usage(root, used)
    return used


def _read_usage(root: Path) -> int | None:
    try:
        text = (root / USAGE_NAME).read_text()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _write_usage(root: Path, used: int) -> None:
    """Record the bytes in use (a new file renamed over the old: never half written)."""
    root.mkdir(parents=True, exist_ok=True)
    new = root / f".{USAGE_NAME}.{os.getpid()}.{threading.get_ident()}"
    new.write_text(str(used))
    os.replace(new, root / USAGE_NAME)


def _scan(root: Path) -> list[tuple[str, int]]:
    """(md5, size) of the objects already on disk, least recently used (mtime) first."""
    found: list[tuple[float, str, int]] = []
    top = root / "files" / "md5"
    for shard in sorted(top.iterdir()) if top.is_dir() else []:
        for entry in os.scandir(shard):
            if entry.is_file() and not entry.name.startswith("."):
                st = entry.stat()
                found.append((st.st_mtime, shard.name + entry.name, st.st_size))
    return [(md5, size) for _, md5, size in sorted(found)]
