"""Workspace files made from cache objects with DVC's link types (`cache.type`).

`reflink` shares the object's blocks (copy-on-write; btrfs, XFS), `hardlink` and `symlink`
point at the object itself (read-only, as DVC leaves them: edit after `dvc unprotect`),
`copy` is a plain copy. DVC tries the configured types in order and uses the first that
works between the cache and the workspace; default `reflink,copy`. A type that cannot work
here (another filesystem, no reflink support) is not tried again by the same command.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from executor.dvcformat.config import DEFAULT_TYPES
from executor.errors import WorkspaceError
from executor.store.base import copy_new, new_from

TMP_SUFFIX = ".executor-tmp"  # a file being written into place, renamed over it when whole
LINKING = frozenset({"hardlink", "symlink"})  # the workspace file is the object itself
FICLONE = 0x40049409  # Linux ioctl: this file shares the other's blocks
# The type cannot work between these two places: try the next one, and skip it from now on.
UNSUPPORTED = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTTY,
     errno.ENOSYS}
)  # fmt: skip


class Links:
    """Places files with the first configured link type that works here."""

    def __init__(self, types: tuple[str, ...] = DEFAULT_TYPES, *, symlinks: bool = True) -> None:
        """`symlinks`: whether links may point at the objects; not when the cache is outside
        the repository, where every workspace path must resolve inside it."""
        self.types = types if symlinks else tuple(t for t in types if t != "symlink")
        self.configured = types
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    @property
    def links_objects(self) -> bool:
        """Whether files may come out as the objects themselves (hard or symbolic links)."""
        return bool(LINKING.intersection(self.types))

    def place(self, src: str, dest: str, mode: int, isexec: bool) -> None:
        """Replace `dest` by the object at `src` in one rename (a folder in the way is
        removed). `mode` is a copy's; a linked object keeps its own, plus exec as DVC adds it."""
        tmp = dest + TMP_SUFFIX
        try:
            self._make(src, tmp, dest, mode, isexec)
            try:
                os.rename(tmp, dest)
            except IsADirectoryError:  # a folder in the way (a symlink is replaced by rename)
                shutil.rmtree(dest)
                os.rename(tmp, dest)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    def _make(self, src: str, tmp: str, dest: str, mode: int, isexec: bool) -> None:
        for kind in self.types:
            if kind in self._failed:
                continue
            try:
                MAKERS[kind](src, tmp, mode)
            except OSError as exc:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                if exc.errno == errno.EMLINK:  # this object has too many links: copy it
                    continue
                if exc.errno not in UNSUPPORTED or kind == "copy":
                    raise
                with self._lock:
                    self._failed.add(kind)
                continue
            if isexec and kind in LINKING:
                _add_exec(src)
            return
        raise WorkspaceError(
            f"none of the cache link types {','.join(self.configured)} works for {dest} "
            "(symlinks need the cache inside the repository); add `copy`: "
            "dvc config cache.type reflink,copy"
        )

    def is_linked(self, path: str, obj: str) -> bool:
        """Whether `path` already is the object by a link these types make."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            return "symlink" in self.types and os.readlink(path) == os.path.abspath(obj)
        if "hardlink" not in self.types or st.st_nlink < 2:
            return False
        try:
            return os.stat(obj).st_ino == st.st_ino
        except FileNotFoundError:
            return False


def _add_exec(obj: str) -> None:
    mode = os.stat(obj).st_mode
    if not mode & stat.S_IEXEC:
        os.chmod(obj, stat.S_IMODE(mode) | stat.S_IEXEC)  # DVC's set_exec, on the object


def _reflink(src: str, tmp: str, mode: int) -> None:
    if sys.platform != "linux":
        raise OSError(errno.ENOTSUP, "reflinks are made on Linux only")
    import fcntl

    new_from(src, tmp, mode, lambda fd_in, fd_out: fcntl.ioctl(fd_out, FICLONE, fd_in))


def _hardlink(src: str, tmp: str, mode: int) -> None:
    _replacing(tmp, lambda: os.link(src, tmp))


def _symlink(src: str, tmp: str, mode: int) -> None:
    _replacing(tmp, lambda: os.symlink(os.path.abspath(src), tmp))


def _replacing(tmp: str, make: Callable[[], None]) -> None:
    """link() and symlink() do not replace: a temporary file a killed run left goes first."""
    try:
        make()
    except FileExistsError:
        os.unlink(tmp)
        make()


MAKERS: dict[str, Callable[[str, str, int], None]] = {
    "reflink": _reflink,
    "hardlink": _hardlink,
    "symlink": _symlink,
    "copy": copy_new,
}


def unprotect(path: Path, within: tuple[str, ...]) -> None:
    """Make an output safe to change in place (a `persist` output before its stage runs),
    as `dvc unprotect` does: every file that is a link to something else (possibly a cache
    object) becomes a copy of its own, writable by its owner. Only links that resolve into
    `within` (the repository, the cache) are followed: a link the stage left pointing at a
    host file must never bring that file into the workspace."""
    if path.is_symlink() or not path.is_dir():
        _unprotect_file(str(path), within)
        return
    for folder, _, names in os.walk(path):
        for name in names:
            _unprotect_file(os.path.join(folder, name), within)


def _unprotect_file(path: str, within: tuple[str, ...]) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(path)
        if not any(real.startswith(base + os.sep) for base in within):
            return  # outside: left as it is, refused after the run if still there
        if not os.path.isfile(real):
            return  # a link to a folder or to nothing: the stage's own business
        st = os.stat(real)
    elif not stat.S_ISREG(st.st_mode) or (st.st_nlink == 1 and st.st_mode & stat.S_IWUSR):
        return
    tmp = path + TMP_SUFFIX
    try:
        copy_new(path, tmp, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
