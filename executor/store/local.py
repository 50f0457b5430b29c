"""A folder in DVC's cache layout, e.g. the repository's own `.dvc/cache`."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from executor.durable import publish
from executor.errors import CorruptObject, ObjectMissing, StoreError
from executor.hashing.digests import Digest, Dos2UnixMd5
from executor.store.atomic import write_atomic
from executor.store.base import (
    checked,
    content_md5,
    copy_new,
    temporary_beside,
)
from executor.store.links import Links
from executor.store.localruns import LocalRuns
from executor.store.runparts import RunsFromPart

OBJECT_MODE = 0o444  # DVC makes cache objects read-only


def _copy_unread(dest: Path, src: Path, seen: os.stat_result) -> bool:
    """Create `dest` as a copy of `src` made in the kernel (a reflink where the filesystem
    can), trusting the md5 judged from `src` at `seen` instead of reading the copy again,
    if `src` is still that version of the file afterwards; False (nothing written) if not."""
    tmp = temporary_beside(dest)
    try:
        copy_new(str(src), tmp, OBJECT_MODE)
        if not _same_version(seen, os.stat(src)):
            os.unlink(tmp)
            return False
        publish(tmp, dest, synced=False)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _same_version(before: os.stat_result, after: os.stat_result) -> bool:
    """Stricter than the state database's key: any write or chmod in between moves ctime."""
    return (
        before.st_dev,
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ) == (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns)


class LocalStore(RunsFromPart):
    """Objects and run-cache entries in a local folder.

    `legacy`: the DVC 2.x objects of the folder (`md5-dos2unix`, directly under the root),
    which DVC 3 still reads for the dvc.lock and .dvc entries 2.x wrote."""

    def __init__(self, root: Path, links: Links | None = None, *, legacy: bool = False) -> None:
        self.root = root
        self.url = str(root)
        self.links = links or Links()  # how checkouts make workspace files from objects
        self.legacy = legacy
        self._objects = str(root) if legacy else os.path.join(root, "files", "md5")
        self._new_digest: Callable[[bytes], Digest] = Dos2UnixMd5 if legacy else hashlib.md5
        self._legacy_view: LocalStore | None = None
        self._runs = LocalRuns(root)

    def copying(self) -> LocalStore:
        """The same objects, placed in the workspace as copies whatever cache.type says."""
        return LocalStore(self.root, Links(("copy",)), legacy=self.legacy)

    def legacy_view(self) -> LocalStore:
        """The same folder's DVC 2.x objects."""
        if self._legacy_view is None:
            self._legacy_view = LocalStore(self.root, self.links, legacy=True)
        return self._legacy_view

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        """Nothing to release."""

    def object_path(self, md5: str) -> Path:
        return Path(self.object_str(md5))

    def object_str(self, md5: str) -> str:
        """`object_path` as a string (no Path object: cheap for thousands of objects)."""
        return f"{self._objects}/{checked(md5)[:2]}/{md5[2:]}"

    def exists(self, md5: str) -> bool:
        return os.path.isfile(self.object_str(md5))

    def exists_many(self, md5s: Iterable[str]) -> set[str]:
        wanted = set(md5s)
        if len(wanted) < 512:
            return {m for m in wanted if os.path.isfile(self.object_str(m))}
        # Many: one listing per two-character folder instead of a stat per object.
        present: set[str] = set()
        for shard in {m[:2] for m in wanted}:
            try:
                names = os.listdir(f"{self._objects}/{shard}")
            except (FileNotFoundError, NotADirectoryError):
                continue
            present.update(shard + n for n in names if not n.startswith("."))
        return wanted & present

    def put_file(
        self, md5: str, src: Path, *, check: bool = True, seen: os.stat_result | None = None
    ) -> None:
        dest = self.object_path(md5)
        if check and dest.is_file():
            return
        try:
            if seen is None or not _copy_unread(dest, src, seen):
                write_atomic(dest, src, OBJECT_MODE, content_md5(md5), self._new_digest)
        except OSError as exc:
            raise StoreError(f"cannot store {src} in {self.root}: {exc.strerror}") from exc

    def put_bytes(self, md5: str, data: bytes, *, check: bool = True) -> None:
        dest = self.object_path(md5)
        if check and dest.is_file():
            return
        try:
            write_atomic(dest, data, OBJECT_MODE, content_md5(md5), self._new_digest)
        except OSError as exc:
            raise StoreError(f"cannot write object {md5} in {self.root}: {exc.strerror}") from exc

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        path = self.object_path(md5)
        try:
            write_atomic(dest, path, mode, content_md5(md5), self._new_digest)
        except CorruptObject as exc:
            raise CorruptObject(md5, str(path), exc.actual) from None
        except FileNotFoundError:
            if not path.is_file():
                raise ObjectMissing(md5, str(self.root)) from None
            raise

    def get_bytes(self, md5: str) -> bytes:
        path = self.object_path(md5)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(md5, str(self.root)) from None
        actual = self._new_digest(data).hexdigest()
        if actual != content_md5(md5):
            raise CorruptObject(md5, str(path), actual)
        return data
