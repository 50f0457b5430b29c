"""The run-cache: DVC's `runs/` entries plus executor's record of the image that made each.

A hit is served only when (1) the newest entry under the key whose recorded image digest
matches (or, for entries DVC wrote itself, none is recorded and DVC runs are trusted) parses,
and (2) every object its outputs name is present in the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from executor import yamlio
from executor.dvcformat.entry import Entry, plain, run_key, run_value
from executor.errors import ExecutorError
from executor.hashing.objects import is_md5, parse_manifest
from executor.store.base import ObjectStore
from executor.store.cachecheck import verify_writable
from executor.store.local import LocalStore

log = logging.getLogger(__name__)

# The layout digest of the runs a caller would accept (JobSpec.layout), computed only if a
# record asks for it: hashing a stage's inputs again costs a walk of its folders. None: not
# knowable yet (--dry, before upstream outputs exist), any layout passes for the prediction.
LayoutOf = Callable[[], str | None]


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
    return not isinstance(store, LocalStore) or verify_writable(store, wanted)


def env_digest(env: Mapping[str, str]) -> str:
    """What identifies the environment variables a stage ran with, in executor's records:
    two runs under one key with other variables (a seed, a library flag) are not the same."""
    return hashlib.sha256(json.dumps(dict(env), sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Record:
    images: dict[str, str]  # digest -> the image reference last resolved to it
    envs: set[str] | None  # env_digest of each environment; None: not recorded (older)
    tags: dict[str, set[str]] | None  # digest -> every reference resolved to it; None: older
    # (image digest, env digest, JobSpec.layout) of each worker run that produced it, as one
    # run had them together; None: only runs in a repository made it
    worker_runs: set[tuple[str, str, str]] | None = None

    def made_with(
        self,
        image_digest: str,
        env: str | None,
        image: str | None = None,
        layout: LayoutOf | None = None,
    ) -> bool:
        """Whether a run with this image digest, environment and (if given) image
        reference produced the entry. The reference counts where digests come from a map
        others can write (a fleet's Redis): a digest recorded under another name is
        another image as far as the map is concerned.

        A worker's run also needs the layout: what its job spec said beyond DVC's key
        (empty folders and exec bits of the inputs, other keys of params files, wdir,
        DVC_STAGE, limits), which whoever writes to Redis chooses. Digest, environment and
        layout must be those of one worker run, not each of another (two forged runs could
        otherwise add up to the victim's). Without `layout` such an entry is refused."""
        if image_digest not in self.images:
            return False
        if env is not None and self.envs is not None and env not in self.envs:
            return False
        if self.worker_runs is not None:
            mine = layout() if layout is not None else ""
            if not any(
                digest == image_digest
                and (env is None or run_env == env)
                and (mine is None or run_layout == mine)
                for digest, run_env, run_layout in self.worker_runs
            ):
                return False
        if image is None or self.tags is None:
            return True
        return image in self.tags.get(image_digest, ())


class RunCache:
    """Lookups and saves of run-cache entries in one object store."""

    def __init__(self, store: ObjectStore, *, trust_dvc_runs: bool = True) -> None:
        self.store = store
        self.trust_dvc_runs = trust_dvc_runs

    def _record(self, key: str, value: str) -> Record | None:
        """Executor's record of an entry: the images that produced it and the digests of
        the environments they ran with (None for records older than that); None if none."""
        raw = self.store.read_record(key, value)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            images = {str(k): str(v) for k, v in dict(doc["images"]).items()}
            envs, tags, runs = doc.get("envs"), doc.get("tags"), doc.get("worker_runs")
            return Record(
                images,
                None if envs is None else {str(e) for e in envs},
                None if tags is None else {str(d): {str(n) for n in ns} for d, ns in tags.items()},
                None if runs is None else {(str(d), str(e), str(x)) for d, e, x in runs},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def lookup(
        self,
        key: str,
        image_digest: str,
        env: str | None = None,
        image: str | None = None,
        layout: LayoutOf | None = None,
    ) -> RunHit | None:
        """The newest complete entry under `key` made with `image_digest` (and, if given,
        the environment whose `env_digest` is `env`, the reference `image` and, for a
        worker's run, the layout `layout` gives), if any."""
        for run in self.store.list_runs(key):
            hit = self.check(key, run.value, image_digest, env, image=image, layout=layout)
            if hit is not None:
                return hit
        return None

    def check(
        self,
        key: str,
        value: str,
        image_digest: str,
        env: str | None = None,
        *,
        image: str | None = None,
        layout: LayoutOf | None = None,
        objects: bool = True,
    ) -> RunHit | None:
        """The entry `value` under `key`, if it is usable for `image_digest` and `env` (and
        `layout`: see Record.made_with; and, with `objects`, every object its outputs name
        is in the store)."""
        record = self._record(key, value)
        if record is None and not self.trust_dvc_runs:
            return None
        if record is not None and not record.made_with(image_digest, env, image, layout):
            return None
        digest = image_digest if record is not None else None
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

    def record(
        self,
        entry: Entry,
        *,
        image: str,
        image_digest: str,
        env: str | None = None,
        layout: str | None = None,
    ) -> None:
        """Write executor's record of a run made with `image` (and the environment whose
        digest is `env`; and, by a worker, the job's `layout`), without DVC's entry (never
        listed, so never a hit): for a stage DVC would not cache, it still says, in the
        store, that a worker produced exactly this entry. Several images, environments and
        layouts may produce the same outputs: the record lists them all."""
        key, value = run_key(entry), run_value(entry)
        old = self._record(key, value)
        images = {**(old.images if old else {}), image_digest: image}
        tags = {d: {n} for d, n in (old.images if old else {}).items()}
        tags.update(old.tags if old and old.tags is not None else {})
        tags[image_digest] = tags.get(image_digest, set()) | {image}
        doc: dict[str, Any] = {
            "images": images,
            "tags": {d: sorted(names) for d, names in tags.items()},
            "updated": time.time(),
        }
        envs = set(old.envs or ()) if old else set()
        if env is not None:
            doc["envs"] = sorted(envs | {env})
        elif old is not None and old.envs is not None:
            doc["envs"] = sorted(envs)
        # Once a worker made it, the entry is served only to a run like one of the workers';
        # a run in a repository (no layout) never lifts that.
        runs = set(old.worker_runs or ()) if old else set()
        if layout is not None:
            runs.add((image_digest, env or "", layout))
        if runs or (old is not None and old.worker_runs is not None):
            doc["worker_runs"] = sorted(list(run) for run in runs)
        self.store.write_record(key, value, json.dumps(doc, sort_keys=True).encode("utf-8"))

    def produced(
        self,
        entry: Entry,
        image_digest: str,
        env: str | None = None,
        image: str | None = None,
        layout: LayoutOf | None = None,
    ) -> bool:
        """Whether the store records a run that produced exactly `entry` with this image
        (and environment, and layout)."""
        record = self._record(run_key(entry), run_value(entry))
        return record is not None and record.made_with(image_digest, env, image, layout)

    def save(
        self,
        entry: Entry,
        *,
        image: str | None,
        image_digest: str | None,
        env: str | None = None,
        layout: str | None = None,
    ) -> tuple[str, str]:
        """Write the entry (unless present) and executor's record beside it; (key, value).

        Without an image (a frozen stage's outputs, verified but not produced here) only
        DVC's entry is written, as `dvc repro` would.
        """
        key, value = run_key(entry), run_value(entry)
        if image is None or image_digest is None:
            present = self.store.read_run(key, value) is not None
        else:
            # The record first: a record without its entry is never listed, while an entry
            # without its record would pass as DVC's own and be served for any image. Whether
            # the entry is there is asked meanwhile (a round trip less to a bucket).
            with ThreadPoolExecutor(1, thread_name_prefix="runcache") as pool:
                reading = pool.submit(self.store.read_run, key, value)
                self.record(entry, image=image, image_digest=image_digest, env=env, layout=layout)
                present = reading.result() is not None
        if not present:
            self.store.write_run(key, value, yamlio.dump(plain(entry)).encode("utf-8"))
        return key, value
