"""What the coordinator and the workers share in Redis: key names, lifetimes and the
run-cache index. Redis holds only what is in flight and what speeds lookups up; everything
durable is in the store."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from executor.dvcformat.entry import Entry, run_key, run_value
from executor.errors import FleetError
from executor.runindex import is_run_value

JOB_FUNCTION = "worker.fleet.run_job"  # by dotted name: executor never imports worker
DEFAULT_QUEUE = "default"
DEFAULT_GPU_QUEUE = "gpu"  # where stages asking for GPUs go (EXECUTOR_GPU_QUEUE, gpu_queue:)
IMAGES_KEY = "executor:images"  # hash: image reference -> the digest a worker last resolved
EVENTS_TTL = 24 * 3600  # a job's log stream and result
ENDED_EVENTS_TTL = 600  # a finished job's stream, for followers still draining it
CANCEL_TTL = 3600  # a cancel request outlives its job's last chance to start
ALIVE_TTL = 15  # seconds a running job's heartbeat key lives unless renewed
ALIVE_EVERY = 5  # seconds between a running job's heartbeats
# A worker cut off from Redis (a partition, a Redis outage) lets its stage run on for
# FENCE_AFTER seconds from its last heartbeat, then stops it and hands it over. Others count
# the worker lost only once its heartbeat key has been missing for LOST_AFTER seconds, at
# least ALIVE_TTL + LOST_AFTER after that heartbeat: after the fenced stage's stop grace
# (worker.jobwatch.fence_after fences sooner for a stop grace over 17 s), so a stage never
# runs in two places at once.
FENCE_AFTER = 45
LOST_AFTER = 50
LEASE_TTL = 7 * 24 * 3600  # a backstop: a lease is judged by its job's status
LEASE_GRACE = 30  # seconds a lease may name a job not enqueued yet
WAITING = frozenset({"queued", "deferred", "scheduled"})

# Delete a key only if it still holds the given value (a lease its holder releases).
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_job_id(value: str) -> bool:
    """A job id as coordinators make them: safe in a Redis key, a folder name, a label."""
    return _JOB_ID.fullmatch(value) is not None


def events_key(job_id: str) -> str:
    """The Redis stream of a job's log lines, line starts and outcome."""
    return f"executor:job:{job_id}:events"


WORKER_INFO_TTL = 120  # seconds a worker's published state lives unless renewed


def worker_info_key(name: str) -> str:
    """A worker's state beyond RQ's record (its local cache use, what it may run), renewed at
    each of its maintenance passes: `executor workers` shows it."""
    return f"executor:worker:{name}"


def cancel_key(job_id: str) -> str:
    """Set to ask the worker running a job to stop its stage (or never to start it)."""
    return f"executor:job:{job_id}:cancel"


def alive_key(job_id: str) -> str:
    """Renewed by a running job every ALIVE_EVERY seconds: its absence means the job's
    worker is gone. Expiry is Redis's clock, so no host's clock can misjudge it."""
    return f"executor:job:{job_id}:alive"


def lease_key(key: str, image: str, queue: str, store_url: str, context: str = "") -> str:
    """Held (by a job id) while a job does the work of run-cache key `key`, with `image`,
    on `queue`, for the store `store_url`, in `context` (the environment's and the layout's
    digests): only such a job's result can stand for ours."""
    text = f"{image}\0{queue}\0{store_url}\0{context}"
    where = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"executor:lease:{key}:{where}"


def index_key(key: str) -> str:
    """The Redis run-cache index of one key: `<value>:<image digest>` -> the image name."""
    return f"executor:runs:{key}"


@contextmanager
def redis_errors(doing: str) -> Iterator[None]:
    """Turn a Redis failure into a one-line FleetError naming what was being done."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise FleetError(f"Redis failed while {doing}: {exc}") from exc


class RunIndex:
    """Which run-cache entries exist, per key and image digest, without listing the store.

    Only names are indexed: a hit is read from the store's `runs/` (the durable truth) and
    checked there, so nothing written to Redis alone can make a stage cached. What the index
    lacks (entries `dvc push --run-cache` uploaded, an index lost with its Redis) is found
    in the store and indexed then. An `executor.runindex.RunCacheIndex`, as the store's
    own `StoreIndex` is.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def add(self, entry: Entry, image: str, image_digest: str) -> None:
        field = f"{run_value(entry)}:{image_digest}"
        self.redis.hset(index_key(run_key(entry)), field, json.dumps({"image": image}))

    def values(self, key: str, image_digest: str) -> list[str]:
        """Names (run values) of entries under `key` made with `image_digest`."""
        found = []
        for field in self.redis.hkeys(index_key(key)):
            value, _, digest = field.decode("utf-8", "replace").partition(":")
            if digest == image_digest and is_run_value(value):
                found.append(value)
        return found
