"""The run-cache: DVC's `runs/` entries plus executor's record of the image that made each.

A hit is served only when (1) the newest entry under the key whose recorded image digest
matches (or, for entries DVC wrote itself, none is recorded and DVC runs are trusted) parses,
and (2) every object its outputs name is present in the store (promise 3 of DESIGN.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from executor import yamlio
from executor.errors import ExecutorError
from executor.hashing import is_md5, parse_manifest
from executor.lockentry import Entry, plain, run_key, run_value
from executor.store.base import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunHit:
    """A usable run-cache entry."""

    key: str
    value: str
    entry: Entry
    image_digest: str | None  # None: written by DVC, no environment recorded


def out_objects(store: ObjectStore, outs: Iterable[dict[str, Any]]) -> list[str] | None:
    """Every object the outs need (dir manifests expanded), or None if a manifest is missing."""
    needed: list[str] = []
    for item in outs:
        md5 = item.get("md5")
        if not is_md5(md5):
            return None  # written by hand or by someone else: names no object we can use
        needed.append(md5)
        if md5.endswith(".dir"):
            if not store.exists(md5):
                return None
            try:
                needed.extend(m for _, m in parse_manifest(store.get_bytes(md5)))
            except (ExecutorError, ValueError, KeyError):
                return None
    return needed


def objects_usable(store: ObjectStore, needed: list[str]) -> bool:
    """Every object present, and (in a local cache) none of the writable ones corrupt."""
    wanted = set(needed)
    if len(store.exists_many(wanted)) != len(wanted):
        return False
    verify = getattr(store, "verify_writable", None)
    return verify is None or bool(verify(wanted))


class RunCache:
    """Lookups and saves of run-cache entries in one object store."""

    def __init__(self, store: ObjectStore, *, trust_dvc_runs: bool = True) -> None:
        self.store = store
        self.trust_dvc_runs = trust_dvc_runs

    def _record_images(self, key: str, value: str) -> dict[str, str] | None:
        """digest -> image of every image that produced this entry; None if none recorded."""
        raw = self.store.read_record(key, value)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            return {str(k): str(v) for k, v in dict(record["images"]).items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def lookup(self, key: str, image_digest: str) -> RunHit | None:
        """The newest complete entry under `key` made with `image_digest`, if any."""
        for run in self.store.list_runs(key):
            hit = self.check(key, run.value, image_digest)
            if hit is not None:
                return hit
        return None

    def check(
        self, key: str, value: str, image_digest: str, *, objects: bool = True
    ) -> RunHit | None:
        """The entry `value` under `key`, if it is usable for `image_digest` (and, with
        `objects`, every object its outputs name is in the store)."""
        images = self._record_images(key, value)
        if images is None and not self.trust_dvc_runs:
            return None
        if images is not None and image_digest not in images:
            return None
        digest = image_digest if images is not None else None
        raw = self.store.read_run(key, value)
        if raw is None:
            return None
        try:
            entry = plain(yamlio.load_text(raw.decode("utf-8"), value))
        except (ExecutorError, UnicodeDecodeError):
            log.warning("corrupted run-cache entry %s/%s, ignored", key, value)
            return None
        if not isinstance(entry, dict) or run_key(entry) != key:
            log.warning("run-cache entry %s/%s does not match its key, ignored", key, value)
            return None
        if objects:
            needed = out_objects(self.store, entry.get("outs", []))
            if needed is None or not objects_usable(self.store, needed):
                log.info("run-cache entry %s/%s has missing objects, not used", key, value)
                return None
        return RunHit(key, value, entry, digest)

    def record(self, entry: Entry, *, image: str, image_digest: str) -> None:
        """Write executor's record of a run made with `image`, without DVC's entry (never
        listed, so never a hit): for a stage DVC would not cache, it still says, in the
        store, that a worker produced exactly this entry. Several images may produce the
        same outputs: the record lists them all."""
        key, value = run_key(entry), run_value(entry)
        images = self._record_images(key, value) or {}
        images[image_digest] = image
        record = {"images": images, "updated": time.time()}
        self.store.write_record(key, value, json.dumps(record, sort_keys=True).encode("utf-8"))

    def produced(self, entry: Entry, image_digest: str) -> bool:
        """Whether the store records a run that produced exactly `entry` with this image."""
        images = self._record_images(run_key(entry), run_value(entry))
        return images is not None and image_digest in images

    def save(self, entry: Entry, *, image: str | None, image_digest: str | None) -> tuple[str, str]:
        """Write the entry (unless present) and executor's record beside it; (key, value).

        Without an image (a frozen stage's outputs, verified but not produced here) only
        DVC's entry is written, as `dvc repro` would.
        """
        key, value = run_key(entry), run_value(entry)
        if image is not None and image_digest is not None:
            # The record first: a record without its entry is never listed, while an entry
            # without its record would pass as DVC's own and be served for any image.
            self.record(entry, image=image, image_digest=image_digest)
        if self.store.read_run(key, value) is None:
            self.store.write_run(key, value, yamlio.dump(plain(entry)).encode("utf-8"))
        return key, value
