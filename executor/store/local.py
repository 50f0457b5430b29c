"""A folder in DVC's cache layout, e.g. the repository's own `.dvc/cache`."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from executor.errors import CorruptObject, StoreError
from executor.store.base import RunFile, object_key, record_key, run_key

OBJECT_MODE = 0o444  # DVC makes cache objects read-only
RUN_MODE = 0o644


def _md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(dest: Path, write: object, mode: int) -> None:
    """Create `dest` via a temporary file in its directory and a rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, bytes):
                f.write(write)
            else:
                with open(write, "rb") as src:  # type: ignore[call-overload]
                    shutil.copyfileobj(src, f, 1024 * 1024)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore:
    """Objects and run-cache entries in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def object_path(self, md5: str) -> Path:
        return self.root / object_key(md5)

    def exists(self, md5: str) -> bool:
        return self.object_path(md5).is_file()

    def exists_many(self, md5s: Iterable[str]) -> set[str]:
        return {m for m in md5s if self.exists(m)}

    def put_file(self, md5: str, src: Path) -> None:
        dest = self.object_path(md5)
        if dest.is_file():
            return
        try:
            _write_atomic(dest, src, OBJECT_MODE)
        except OSError as exc:
            raise StoreError(f"cannot store {src} in {self.root}: {exc.strerror}") from exc

    def put_bytes(self, md5: str, data: bytes) -> None:
        dest = self.object_path(md5)
        if dest.is_file():
            return
        try:
            _write_atomic(dest, data, OBJECT_MODE)
        except OSError as exc:
            raise StoreError(f"cannot write object {md5} in {self.root}: {exc.strerror}") from exc

    def _verified(self, md5: str) -> Path:
        path = self.object_path(md5)
        if not path.is_file():
            raise StoreError(f"object {md5} is missing from {self.root}")
        return path

    def get_file(self, md5: str, dest: Path) -> None:
        path = self._verified(md5)
        _write_atomic(dest, path, 0o644)
        actual = _md5_of(dest)
        if actual != md5.removesuffix(".dir"):
            dest.unlink(missing_ok=True)
            raise CorruptObject(md5, str(path), actual)

    def get_bytes(self, md5: str) -> bytes:
        path = self._verified(md5)
        data = path.read_bytes()
        actual = hashlib.md5(data).hexdigest()
        if actual != md5.removesuffix(".dir"):
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
            if name.startswith("."):
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
        _write_atomic(self.root / run_key(key, value), data, RUN_MODE)

    def read_record(self, key: str, value: str) -> bytes | None:
        try:
            return (self.root / record_key(key, value)).read_bytes()
        except FileNotFoundError:
            return None

    def write_record(self, key: str, value: str, data: bytes) -> None:
        _write_atomic(self.root / record_key(key, value), data, RUN_MODE)
