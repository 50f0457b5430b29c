"""The object store seam: one interface, a folder adapter and an S3 adapter.

Layout (DVC 3's cache and remote layout):
    files/md5/<md5[:2]>/<md5[2:]>        objects (`.dir` manifests keep their suffix)
    runs/<key[:2]>/<key>/<value>         run-cache entries, pure DVC YAML
    executor/runs/<key[:2]>/<key>/<value>.json   executor's record beside each entry (image digest)
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from executor.errors import StoreError
from executor.hashing.objects import is_md5

_HEX = frozenset("0123456789abcdef")
COPY_CHUNK = 8 * 1024 * 1024


def object_key(md5: str) -> str:
    """Relative key of an object: files/md5/ab/cdef... ('.dir' kept)."""
    return f"files/md5/{checked(md5)[:2]}/{md5[2:]}"


def legacy_object_key(md5: str) -> str:
    """Relative key of a DVC 2.x (md5-dos2unix) object: ab/cdef..., at the root."""
    return f"{checked(md5)[:2]}/{md5[2:]}"


def checked(md5: str) -> str:
    """`md5`, if it is an object name; never a path that leads elsewhere."""
    if not is_md5(md5):
        raise StoreError(f"refusing object name {md5!r}: not an md5")
    return md5


def content_md5(md5: str) -> str:
    """The md5 an object's content hashes to: its name without a `.dir` suffix."""
    return md5.removesuffix(".dir")


def is_run_name(name: str) -> bool:
    """Whether `name` has the shape of a run-cache key or value (a sha256: 64 lowercase hex)."""
    return len(name) == 64 and _HEX.issuperset(name)


def _run_name(name: str) -> str:
    """A run-cache key or value, never a path that leads elsewhere."""
    if not is_run_name(name):
        raise StoreError(f"refusing run-cache name {name[:80]!r}: not a sha256")
    return name


def run_key(key: str, value: str | None = None) -> str:
    """Relative key of a run-cache key directory, or of one entry in it."""
    base = f"runs/{key[:2]}/{_run_name(key)}"
    return base if value is None else f"{base}/{_run_name(value)}"


def record_key(key: str, value: str) -> str:
    """Relative key of executor's JSON record beside a DVC run-cache entry."""
    return f"executor/runs/{key[:2]}/{_run_name(key)}/{_run_name(value)}.json"


def temporary_beside(dest: Path) -> str:
    """A temporary name in `dest`'s folder, unique to this process and thread."""
    return f"{dest.parent}/.{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp"


def create(path: str, mode: int) -> int:
    """Open a new file for writing with `mode` (its folders made as needed); a leftover of a
    crashed writer with the same name is replaced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, mode)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except FileExistsError:
        os.unlink(path)
    return os.open(path, flags, mode)


def copy_new(src: str, path: str, mode: int) -> None:
    """Create `path` (as `create` does) with exactly `mode`, whatever the umask, holding a copy
    of `src`: in the kernel, as a reflink where the filesystem shares blocks (btrfs, XFS: what
    DVC's default `reflink,copy` gives), and in a handful of system calls for a small file
    where shutil.copyfile and a chmod make a dozen (they add up over 10,000-file checkouts)."""
    new_from(
        src, path, mode, lambda fd_in, fd_out: _copy_fd(fd_in, fd_out, os.fstat(fd_in).st_size)
    )


def new_from(src: str, path: str, mode: int, fill: Callable[[int, int], object]) -> None:
    """Create `path` (as `create` does), `fill(fd_in, fd_out)` it from `src`, then set
    exactly `mode`, whatever the umask."""
    fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd_out = create(path, mode)
        try:
            fill(fd_in, fd_out)
            os.fchmod(fd_out, mode)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_range(fd_in: int, fd_out: int, offset: int) -> int:
    return os.copy_file_range(fd_in, fd_out, COPY_CHUNK, offset)


def _send(fd_in: int, fd_out: int, offset: int) -> int:
    return os.sendfile(fd_out, fd_in, offset, COPY_CHUNK)


def _read_write(fd_in: int, fd_out: int, offset: int) -> int:
    chunk = os.pread(fd_in, COPY_CHUNK, offset)
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd_out, view) :]
    return len(chunk)


# Tried in order, each from where the one before stopped (all write at fd_out's position):
# copy_file_range is refused across filesystems and on old kernels, sendfile between files
# off Linux; a method that stops short of the size hands over too.
COPY_STEPS = (
    *((_copy_range,) if hasattr(os, "copy_file_range") else ()),
    *((_send,) if hasattr(os, "sendfile") else ()),
)
NOT_HERE = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOTSOCK}
)


def _copy_fd(fd_in: int, fd_out: int, size: int) -> None:
    offset = 0
    for step in COPY_STEPS:
        try:
            while offset < size and (done := step(fd_in, fd_out, offset)):
                offset += done
        except OSError as exc:
            # Refused before any byte moved (seccomp's EPERM in old container runtimes, odd
            # network filesystems): the next method; once bytes moved, a real failure.
            if offset and exc.errno not in NOT_HERE:
                raise
        if offset >= size:
            break
    while offset < size and (done := _read_write(fd_in, fd_out, offset)):
        offset += done


@dataclass(frozen=True)
class RunFile:
    """One run-cache entry under a key: its value name and modification time."""

    value: str
    mtime: float


class ObjectStore(Protocol):
    """A content-addressed store of DVC objects and run-cache entries."""

    url: str

    def exists(self, md5: str) -> bool:
        """Whether the object is present."""
        ...

    def exists_many(self, md5s: Iterable[str]) -> set[str]:
        """The subset of `md5s` that is present (batched: one listing when there are many)."""
        ...

    def put_file(
        self, md5: str, src: Path, *, check: bool = True, seen: os.stat_result | None = None
    ) -> None:
        """Store `src` as object `md5` unless present; never visible half-written or with
        content that does not hash to `md5` (CorruptObject). `check=False`: the caller already
        knows it is missing (after `exists_many`), so no existence request is made. `seen`:
        the stat of `src` its md5 was computed at; a store may then trust the md5 if `src`
        still has that stat after the copy, instead of hashing what it copied again."""
        ...

    def put_bytes(self, md5: str, data: bytes, *, check: bool = True) -> None:
        """Store `data` as object `md5` unless present (verified like `put_file`)."""
        ...

    def legacy_view(self) -> ObjectStore:
        """The same store's DVC 2.x objects: `<root>/ab/cdef...`, named by md5-dos2unix.
        It shares the store's connections: close the store, not the view."""
        ...

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        """Write object `md5` to `dest` atomically with `mode`, verifying its content
        (CorruptObject); ObjectMissing if the store does not have it."""
        ...

    def get_bytes(self, md5: str) -> bytes:
        """Read object `md5`, verifying its content."""
        ...

    def list_runs(self, key: str) -> list[RunFile]:
        """Entries stored under a run-cache key, newest first."""
        ...

    def read_run(self, key: str, value: str) -> bytes | None:
        """The YAML bytes of one entry, or None if absent."""
        ...

    def write_run(self, key: str, value: str, data: bytes) -> None:
        """Write one entry atomically (overwrites: entries are named by their content)."""
        ...

    def read_record(self, key: str, value: str) -> bytes | None:
        """executor's JSON record beside an entry, or None."""
        ...

    def write_record(self, key: str, value: str, data: bytes) -> None:
        """Write executor's JSON record beside an entry atomically."""
        ...

    def all_runs(self) -> dict[str, list[RunFile]]:
        """Every run-cache entry in the store by key (one listing; order not defined)."""
        ...

    def all_records(self) -> set[tuple[str, str]]:
        """(key, value) of every executor record in the store: one listing."""
        ...

    def remove_all(self) -> None:
        """Remove everything the store holds, objects and entries alike: for a scratch
        store (store.scratch) that one job's uncommitted outputs passed through."""
        ...

    def close(self) -> None:
        """Release threads and connections (the store is not used afterwards)."""
        ...
