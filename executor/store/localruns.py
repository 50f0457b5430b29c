"""Run-cache entries (DVC's `runs/`) and executor's records beside them, in a local folder."""

from __future__ import annotations

import os
from pathlib import Path

from executor.errors import StoreError
from executor.store.atomic import write_atomic
from executor.store.base import RunFile, is_run_name, record_key, run_key

RUN_MODE = 0o644


class LocalRuns:
    """The run-cache part of a local store (ObjectStore's run methods) under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

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
        self._write(run_key(key, value), data)

    def read_record(self, key: str, value: str) -> bytes | None:
        try:
            return (self.root / record_key(key, value)).read_bytes()
        except FileNotFoundError:
            return None

    def write_record(self, key: str, value: str, data: bytes) -> None:
        self._write(record_key(key, value), data)

    def _write(self, rel: str, data: bytes) -> None:
        try:
            write_atomic(self.root / rel, data, RUN_MODE)
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
