"""A folder in DVC's cache layout, e.g. the repository's own `.dvc/cache`."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from executor.durable import publish
from executor.errors import CorruptObject, ObjectMissing, StoreError
from executor.hashing.digests import Digest, Dos2UnixMd5, file_md5, file_md5_dos2unix
from executor.store.base import (
    RunFile,
    checked,
    copy_new,
    is_run_name,
    record_key,
    run_key,
    temporary_beside,
)
from executor.store.links import Links

OBJECT_MODE = 0o444  # DVC makes cache objects read-only
RUN_MODE = 0o644
CHUNK = 1024 * 1024


def _md5_name(md5: str) -> str:
    return md5.removesuffix(".dir")


def _write_atomic(
    dest: Path,
    source: bytes | Path,
    mode: int,
    expect: str | None = None,
    new_digest: Callable[[bytes], Digest] = hashlib.md5,
) -> None:
    """Create `dest` via a temporary file in its directory and a rename; with `expect`, the
    bytes written must hash to it (CorruptObject otherwise, and `dest` is left untouched)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        digest = new_digest(b"")
        with os.fdopen(fd, "wb") as f:
            if isinstance(source, bytes):
                digest.update(source)
                f.write(source)
            else:
                with open(source, "rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if expect is not None and digest.hexdigest() != expect:
            where = "the data given" if isinstance(source, bytes) else str(source)
            raise CorruptObject(expect, where, digest.hexdigest())
        os.chmod(tmp, mode)
        publish(tmp, dest, synced=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class LocalStore:
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
        self._file_md5 = file_md5_dos2unix if legacy else file_md5
        self._legacy_view: LocalStore | None = None

    def copying(self) -> LocalStore:
        """The same objects, placed in the workspace as copies whatever cache.type says."""
        return LocalStore(self.root, Links(("copy",)), legacy=self.legacy)

    def legacy_view(self) -> LocalStore:
        """The same folder's DVC 2.x objects."""
        if self._legacy_view is None:
            self._legacy_view = LocalStore(self.root, self.links, legacy=True)
        return self._legacy_view

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

    def drop_corrupt(self, md5s: Iterable[str]) -> set[str]:
        """Objects someone made writable (a hardlinked workspace file after `chmod +w`) and
        changed: removed, as DVC's cache check removes them, so they are stored or fetched
        again instead of linked to; those dropped. Read-only objects cost one stat each."""
        dropped = set()
        for md5 in set(md5s):
            path = self.object_str(md5)
            try:
                writable = os.stat(path).st_mode & 0o222
            except FileNotFoundError:
                continue
            if not writable:
                continue
            if self._file_md5(path) != _md5_name(md5):
                os.unlink(path)
                dropped.add(md5)
            else:  # intact: read-only again, so the next check is one stat (DVC protects it)
                os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o222)
        return dropped

    def verify_writable(self, md5s: Iterable[str]) -> bool:
        """DVC trusts protected (read-only) objects and hashes writable ones before using
        them: whether every object is present and intact (`drop_corrupt` removed none)."""
        wanted = set(md5s)
        return not self.drop_corrupt(wanted) and self.exists_many(wanted) == wanted

    def put_file(
        self, md5: str, src: Path, *, check: bool = True, seen: os.stat_result | None = None
    ) -> None:
        dest = self.object_path(md5)
        if check and dest.is_file():
            return
        try:
            if seen is None or not _copy_unread(dest, src, seen):
                _write_atomic(dest, src, OBJECT_MODE, _md5_name(md5), self._new_digest)
        except OSError as exc:
            raise StoreError(f"cannot store {src} in {self.root}: {exc.strerror}") from exc

    def put_bytes(self, md5: str, data: bytes, *, check: bool = True) -> None:
        dest = self.object_path(md5)
        if check and dest.is_file():
            return
        try:
            _write_atomic(dest, data, OBJECT_MODE, _md5_name(md5), self._new_digest)
        except OSError as exc:
            raise StoreError(f"cannot write object {md5} in {self.root}: {exc.strerror}") from exc

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        path = self.object_path(md5)
        try:
            _write_atomic(dest, path, mode, _md5_name(md5), self._new_digest)
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
        if actual != _md5_name(md5):
            raise CorruptObject(md5, str(path), actual)
        return data

    def list_runs(self, key: str) -> list[RunFile]:
        folder = self.root / run_key(key)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        files = []
        for name in names:
            if not is_run_name(name):  # temporaries, and anything no run-cache writes
                continue
            try:
                files.append(RunFile(name, (folder / name).stat().st_mtime))
            except FileNotFoundError:
                continue
        return sorted(files, key=lambda f: f.mtime, reverse=True)

    def read_run(self, key: str, value: str) -> bytes | None:
        try:
            return (self.root / run_key(key, value)).read_bytes()
        except FileNotFoundError:
            return None

    def write_run(self, key: str, value: str, data: bytes) -> None:
        self._write_run_file(run_key(key, value), data)

    def read_record(self, key: str, value: str) -> bytes | None:
        try:
            return (self.root / record_key(key, value)).read_bytes()
        except FileNotFoundError:
            return None

    def write_record(self, key: str, value: str, data: bytes) -> None:
        self._write_run_file(record_key(key, value), data)

    def _write_run_file(self, rel: str, data: bytes) -> None:
        try:
            _write_atomic(self.root / rel, data, RUN_MODE)
        except OSError as exc:
            raise StoreError(
                f"cannot write {rel} in the cache {self.root}: {exc.strerror or exc}; "
                "free space or fix the folder's permissions, then run again"
            ) from exc

    def all_runs(self) -> dict[str, list[RunFile]]:
        return {
            key: [RunFile(name, mtime) for name, mtime in files]
            for key, files in _walk_pairs(self.root / "runs").items()
        }

    def all_records(self) -> set[tuple[str, str]]:
        pairs = _walk_pairs(self.root / "executor" / "runs")
        return {(k, n.removesuffix(".json")) for k, files in pairs.items() for n, _ in files}


def _walk_pairs(top: Path) -> dict[str, list[tuple[str, float]]]:
    """key -> [(file name, mtime)] of a `<k[:2]>/<k>/<file>` tree; temporaries left out."""
    found: dict[str, list[tuple[str, float]]] = {}
    for shard in _scandir(top):
        for key in _scandir(Path(shard.path)):
            if not is_run_name(key.name):
                continue
            files = [
                (f.name, f.stat().st_mtime)
                for f in _scandir(Path(key.path))
                if is_run_name(f.name.removesuffix(".json")) and f.is_file()
            ]
            if files:
                found[key.name] = files
    return found


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
