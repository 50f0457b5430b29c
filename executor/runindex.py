"""The run-cache index: which entries exist under a run-cache key for an image digest.

It lives in two places: a store's `runs/` beside executor's records (`StoreIndex`, the
durable truth) and a fleet's Redis (`executor.fleet.keys.RunIndex`, names only, to save a
listing of the store). Both answer with candidates, never with a hit: a caller reads and
checks each in the store (`RunCache.check`). Both name only values of a run value's shape,
so nothing someone else wrote there becomes a path or a key of its own.
"""

from __future__ import annotations

import json
from typing import Protocol

from executor.dvcformat.entry import Entry
from executor.runcache import RunCache
from executor.store.base import ObjectStore, is_run_name

is_run_value = is_run_name  # a run-cache key and a run value are both sha256s


class RunCacheIndex(Protocol):
    """Names of run-cache entries per key and image digest (a contract suite:
    tests/test_contract_runindex.py)."""

    def values(self, key: str, image_digest: str) -> list[str]:
        """Run values of the entries under `key` made with `image_digest`: candidates to
        read and check in the store; none of another shape."""
        ...

    def add(self, entry: Entry, image: str, image_digest: str) -> None:
        """Name `entry` as made with `image` resolved to `image_digest`."""
        ...


class StoreIndex:
    """The index a store keeps by itself: its `runs/` listing and executor's records."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def values(self, key: str, image_digest: str) -> list[str]:
        """Newest first. Entries DVC wrote (no record) are made with no image: not named."""
        if not is_run_value(key):  # a key of another shape could name a folder elsewhere
            return []
        found = []
        for run in self.store.list_runs(key):
            if is_run_value(run.value) and image_digest in self._images(key, run.value):
                found.append(run.value)
        return found

    def _images(self, key: str, value: str) -> set[str]:
        raw = self.store.read_record(key, value)
        try:
            images = json.loads(raw or b"null")["images"]
        except (ValueError, TypeError, KeyError):
            return set()
        return {str(d) for d in images} if isinstance(images, dict) else set()

    def add(self, entry: Entry, image: str, image_digest: str) -> None:
        """Save the entry and its record (naming no environment or layout: a caller that
        knows them saves with RunCache.save itself)."""
        RunCache(self.store).save(entry, image=image, image_digest=image_digest)
