"""Run-cache entries (DVC's `runs/`) and executor's records beside them, in a bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from executor.store.base import RunFile, is_run_name, record_key, run_key
from executor.store.s3bucket import S3Bucket

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectTypeDef


class S3Runs:
    """The run-cache part of an S3 store (ObjectStore's run methods)."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket

    def list_runs(self, key: str) -> list[RunFile]:
        prefix = self._bucket.key(run_key(key)) + "/"
        with self._bucket.errors(f"listing run-cache key {key}"):
            files = [
                RunFile(o["Key"][len(prefix) :], o["LastModified"].timestamp())
                for o in self._bucket.list(prefix)
            ]
        files = [f for f in files if is_run_name(f.value)]
        return sorted(files, key=lambda f: f.mtime, reverse=True)

    def read_run(self, key: str, value: str) -> bytes | None:
        return self._bucket.read(self._bucket.key(run_key(key, value)))

    def write_run(self, key: str, value: str, data: bytes) -> None:
        with self._bucket.errors(f"writing run-cache entry {key}/{value}"):
            self._bucket.put(self._bucket.key(run_key(key, value)), data)

    def read_record(self, key: str, value: str) -> bytes | None:
        return self._bucket.read(self._bucket.key(record_key(key, value)))

    def write_record(self, key: str, value: str, data: bytes) -> None:
        with self._bucket.errors(f"writing the record of {key}/{value}"):
            self._bucket.put(self._bucket.key(record_key(key, value)), data)

    def all_runs(self) -> dict[str, list[RunFile]]:
        runs: dict[str, list[RunFile]] = {}
        for parts, obj in self._tree("runs/"):
            runs.setdefault(parts[1], []).append(RunFile(parts[2], obj["LastModified"].timestamp()))
        return runs

    def all_records(self) -> set[tuple[str, str]]:
        return {(p[1], p[2].removesuffix(".json")) for p, _ in self._tree("executor/runs/")}

    def _tree(self, rel: str) -> Iterator[tuple[list[str], ObjectTypeDef]]:
        """(["ab", key, name], object) under a `<k[:2]>/<k>/<name>` tree."""
        prefix = self._bucket.key(rel)
        with self._bucket.errors(f"listing {rel}"):
            for obj in self._bucket.list(prefix):
                parts = obj["Key"][len(prefix) :].split("/")
                if (
                    len(parts) == 3
                    and is_run_name(parts[1])
                    and is_run_name(parts[2].removesuffix(".json"))
                ):
                    yield parts, obj
