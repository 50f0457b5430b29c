"""Run-cache entries (DVC's `runs/`) and executor's records beside them, in a bucket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from executor.store.base import RunFile, is_run_name, record_key, run_key
from executor.store.s3bucket import S3Bucket

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectTypeDef


SNAPSHOT_FOR = 1.0  # seconds one listing of a small run-cache answers every key's lookup
SNAPSHOT_KEYS = 1000  # a run-cache listed in one request (S3's page), or per key


class S3Runs:
    """The run-cache part of an S3 store (ObjectStore's run methods).

    A command that looks up many keys in a row (submit's decisions: one per stage) would list
    each key's prefix, a request each: while the whole `runs/` tree fits in one page, it is
    listed once instead and that listing answers for `SNAPSHOT_FOR` seconds, so a lookup
    never sees the store older than that (and sees its own writes at once). A key looked up
    again (after waiting for a job doing its work) is listed afresh, as is every key of a
    larger run-cache."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket
        self._snapshot: tuple[float, dict[str, list[RunFile]]] | None = None
        self._large = False  # more than SNAPSHOT_KEYS files: list per key
        self._answered: set[str] = set()  # keys the snapshot answered: asked again, listed

    def list_runs(self, key: str) -> list[RunFile]:
        rel = run_key(key)  # the key checked first
        files = self._listed(rel.rsplit("/", 1)[1])
        if files is None:
            prefix = self._bucket.key(rel) + "/"
            with self._bucket.errors(f"listing run-cache key {key}"):
                files = [
                    RunFile(o["Key"][len(prefix) :], o["LastModified"].timestamp())
                    for o in self._bucket.list(prefix)
                ]
        files = [f for f in files if is_run_name(f.value)]
        return sorted(files, key=lambda f: f.mtime, reverse=True)

    def _listed(self, name: str) -> list[RunFile] | None:
        """The files of the key named `name` from a listing of the whole run-cache not older than
        SNAPSHOT_FOR; None when the run-cache is too large for one request."""
        now = time.monotonic()
        if self._large or name in self._answered:
            return None  # a key asked again (a job waited for) is listed as it is now
        if self._snapshot is None or now - self._snapshot[0] > SNAPSHOT_FOR:
            prefix = self._bucket.key("runs/")
            with self._bucket.errors("listing the run-cache"):
                page = self._bucket.client.list_objects_v2(
                    Bucket=self._bucket.name, Prefix=prefix, MaxKeys=SNAPSHOT_KEYS
                )
            if page.get("IsTruncated"):
                self._large = True
                return None
            runs: dict[str, list[RunFile]] = {}
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(prefix) :].split("/")
                if len(parts) == 3:
                    runs.setdefault(parts[1], []).append(
                        RunFile(parts[2], obj["LastModified"].timestamp())
                    )
            self._snapshot = (now, runs)
            self._answered = set()
        self._answered.add(name)
        return list(self._snapshot[1].get(name, []))

    def read_run(self, key: str, value: str) -> bytes | None:
        return self._bucket.read(self._bucket.key(run_key(key, value)))

    def write_run(self, key: str, value: str, data: bytes) -> None:
        with self._bucket.errors(f"writing run-cache entry {key}/{value}"):
            self._bucket.put(self._bucket.key(run_key(key, value)), data)
        self._snapshot = None  # this store's own writes are listed at once

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
