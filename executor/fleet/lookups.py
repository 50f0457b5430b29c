"""The fleet's run-cache as a submission sees it: image digests the workers resolved, and
lookups through the Redis index, confirmed in the fleet's store, outputs fetched home."""

from __future__ import annotations

import logging
from typing import Any

from executor.dvcformat.entry import Entry
from executor.errors import ExecutorError, RemoteError
from executor.fleet.keys import IMAGES_KEY, RunIndex, redis_errors
from executor.fleet.objects import FleetObjects
from executor.jobfields import is_image_digest
from executor.runcache import LayoutOf, RunCache, RunHit

log = logging.getLogger(__name__)


class FleetLookups:
    """FleetBackend's lookups (its `redis`, `index`, `runcache`, `local_runs`, `objects`)."""

    redis: Any
    index: RunIndex
    runcache: RunCache
    local_runs: RunCache
    objects: FleetObjects
    _image_names: dict[str, str]

    def resolve_image(self, image: str) -> str:
        """The digest the fleet's workers last resolved `image` to. Unknown until a worker
        has run it: lookups then miss, and the worker records the digest with its entry."""
        if image.startswith("sha256:"):
            self._image_names[image] = image
            return image
        with redis_errors("reading image digests"):
            digest = self.redis.hget(IMAGES_KEY, image)
        text = digest.decode("utf-8", "replace") if digest else ""
        if not is_image_digest(text):  # none yet, or not what a worker writes: unknown
            return f"unresolved:{image}"
        self._image_names[text] = image
        return text

    def lookup(
        self,
        key: str,
        image_digest: str,
        *,
        env: str | None = None,
        fetch: bool = True,
        layout: LayoutOf | None = None,
        index_only: bool = False,
    ) -> Entry | None:
        """A usable entry of the fleet's run-cache, its outputs fetched into the local cache
        (without `fetch`, as --dry: found and checked only); `layout` as RunCache.check.

        The Redis index names candidate entries (saving a listing of the store); each is
        read and checked in the store, which alone decides. Entries the index lacks are
        looked for in the store and indexed (unless `index_only`: what a worker finished
        since the last full look is in the index already)."""
        # The digest came from Redis: the record must say a worker resolved this very
        # reference to it (a tag pointed at another image would not match).
        image = self._image_names.get(image_digest)
        with redis_errors("looking up the run-cache index"):
            values = self.index.values(key, image_digest)
        for value in values:
            hit = self.runcache.check(
                key, value, image_digest, env, image=image, layout=layout, objects=not fetch
            )
            if hit is not None and (not fetch or self._fetched(hit, env, layout)):
                return hit.entry
        hit = None if index_only else self.runcache.lookup(key, image_digest, env, image, layout)
        if hit is None or not fetch:
            return None if hit is None else hit.entry
        if not self._fetched(hit, env, layout):
            return None
        if hit.image_digest is not None and image is not None:
            with redis_errors("indexing a run"):
                self.index.add(hit.entry, image, image_digest)
        return hit.entry

    def _fetched(self, hit: RunHit, env: str | None, layout: LayoutOf | None) -> bool:
        """Fetch a hit's objects and record it locally; False if the store lacks some."""
        try:
            self.objects.fetch(hit.entry.get("outs", []))
        except (RemoteError, ExecutorError) as exc:
            log.warning("run %s/%s is not usable (%s)", hit.key, hit.value, exc)
            return False
        image = self._image_names.get(hit.image_digest or "")
        if image is not None and hit.image_digest is not None:
            # As after a run here: `executor run` and `dvc repro` find it in .dvc/cache.
            # With the layout it was checked against: a worker's run stays one.
            self.local_runs.save(
                hit.entry,
                image=image,
                image_digest=hit.image_digest,
                env=env,
                layout=layout() if layout is not None else None,
            )
        else:
            self.local_runs.save(hit.entry, image=None, image_digest=None)
        return True
