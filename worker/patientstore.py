"""A worker's view of its store that waits out an outage instead of failing the job.

botocore already retries each request a few times (throttling, 5xx, dropped connections),
over a few seconds. A store restarting, or a network cut of a minute, outlasts that: the
request then fails with StoreUnreachable. On a worker that would throw away a stage that has
already run, so every store call here is tried again, with jittered exponential backoff,
until a time budget (`--store-patience`, EXECUTOR_WORKER_STORE_PATIENCE) is spent. Only
StoreUnreachable is retried: a missing or corrupt object, a refusal or a stage's own failure
is an answer, not an outage. Every call is safe to repeat: objects and entries are named by
their content and published by rename, so a second write of the same thing changes nothing.
A cancel request ends the wait at once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from executor.errors import StoreUnreachable
from executor.store.base import ObjectStore, RunFile

log = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_WAIT = 0.5  # seconds before the first retry; doubled each time, up to MAX_WAIT
MAX_WAIT = 15.0
STORE_PATIENCE = 120.0  # seconds a worker waits for its store, by default


class PatientStore:
    """`inner`, with each call retried on StoreUnreachable within `patience` seconds."""

    def __init__(
        self, inner: ObjectStore, patience: float, *, stop: threading.Event | None = None
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.patience = patience
        self.stop = stop or threading.Event()

    def _patiently(self, what: str, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.patience
        wait = FIRST_WAIT
        while True:
            try:
                return call()
            except StoreUnreachable as exc:
                left = deadline - time.monotonic()
                pause = min(random.uniform(wait / 2, wait), left)
                if pause <= 0 or self.stop.is_set():
                    raise
                log.warning(
                    "store unreachable while %s; retrying in %.1f s (%.0f s of patience left): %s",
                    what, pause, left, exc,
                )  # fmt: skip
                if self.stop.wait(pause):
                    raise
                wait = min(wait * 2, MAX_WAIT)

    def exists(self, md5: str) -> bool:
        return self._patiently("looking for an object", lambda: self.inner.exists(md5))

    def exists_many(self, md5s: Iterable[str]) -> set[str]:
        wanted = list(md5s)  # an iterator would be spent by the first attempt
        return self._patiently("looking for objects", lambda: self.inner.exists_many(wanted))

    def put_file(
        self, md5: str, src: Path, *, check: bool = True, seen: os.stat_result | None = None
    ) -> None:
        self._patiently(
            f"storing object {md5}", lambda: self.inner.put_file(md5, src, check=check, seen=seen)
        )

    def put_bytes(self, md5: str, data: bytes, *, check: bool = True) -> None:
        self._patiently(
            f"storing object {md5}", lambda: self.inner.put_bytes(md5, data, check=check)
        )

    def legacy_view(self) -> ObjectStore:
        return PatientStore(self.inner.legacy_view(), self.patience, stop=self.stop)

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        self._patiently(f"fetching object {md5}", lambda: self.inner.get_file(md5, dest, mode=mode))

    def get_bytes(self, md5: str) -> bytes:
        return self._patiently(f"fetching object {md5}", lambda: self.inner.get_bytes(md5))

    def list_runs(self, key: str) -> list[RunFile]:
        return self._patiently("listing run-cache entries", lambda: self.inner.list_runs(key))

    def read_run(self, key: str, value: str) -> bytes | None:
        return self._patiently("reading a run-cache entry", lambda: self.inner.read_run(key, value))

    def write_run(self, key: str, value: str, data: bytes) -> None:
        self._patiently("writing a run-cache entry", lambda: self.inner.write_run(key, value, data))

    def read_record(self, key: str, value: str) -> bytes | None:
        return self._patiently("reading a run record", lambda: self.inner.read_record(key, value))

    def write_record(self, key: str, value: str, data: bytes) -> None:
        self._patiently("writing a run record", lambda: self.inner.write_record(key, value, data))

    def all_runs(self) -> dict[str, list[RunFile]]:
        return self._patiently("listing the run-cache", self.inner.all_runs)

    def all_records(self) -> set[tuple[str, str]]:
        return self._patiently("listing run records", self.inner.all_records)

    def remove_all(self) -> None:
        self._patiently("removing a scratch store", self.inner.remove_all)

    def close(self) -> None:
        self.inner.close()
