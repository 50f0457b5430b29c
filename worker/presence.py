"""What `executor workers` shows of a worker beyond RQ's own record (host, queues, state,
current job, heartbeat): its local cache use and limit, and the GPUs it declares. Written at
the worker's start and at each maintenance pass; it expires unless renewed."""

from __future__ import annotations

from typing import Any

from executor.fleet.keys import WORKER_INFO_TTL, worker_info_key
from worker.config import WorkerConfig
from worker.localcache import bytes_used


def publish(redis: Any, name: str, config: WorkerConfig) -> None:
    """Write this worker's state under its RQ name."""
    info = {
        "cache_bytes": bytes_used(config.home / "cache"),
        "cache_limit": config.cache_bytes,
        "home": str(config.home),
    }
    key = worker_info_key(name)
    with redis.pipeline() as pipe:
        pipe.hset(key, mapping=info)
        pipe.expire(key, WORKER_INFO_TTL)
        pipe.execute()
