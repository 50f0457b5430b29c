"""Where a fleet is (its Redis, its store, its queue) and a checked connection to its Redis."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from executor.errors import ConfigError, FleetError
from executor.fleet.keys import DEFAULT_GPU_QUEUE, DEFAULT_QUEUE
from executor.redact import redact
from executor.settings import Settings

REDIS_TIMEOUT = 30.0  # seconds any Redis call of the coordinator may take
REDIS_PATIENCE = 60.0  # seconds a lost connection is retried (a Redis restart) before failing
RECONNECT_CAP = 4.0  # seconds at most between two reconnection attempts


@dataclass(frozen=True)
class FleetConfig:
    """Where the fleet is: its Redis, its store, the queue to submit to, and the queue of
    stages that ask for GPUs."""

    redis_url: str
    store_url: str
    queue: str = DEFAULT_QUEUE
    gpu_queue: str = DEFAULT_GPU_QUEUE

    @classmethod
    def from_options(
        cls,
        redis_url: str | None,
        store_url: str | None,
        queue: str | None,
        env: Mapping[str, str],
        settings: Settings,
    ) -> FleetConfig:
        """The command line's options, else the environment, else `.executor.yaml`."""
        redis_url = redis_url or env.get("EXECUTOR_REDIS_URL") or settings.raw.get("redis_url")
        store_url = store_url or settings.store  # EXECUTOR_STORE, else `store:`
        queue = queue or env.get("EXECUTOR_QUEUE") or settings.raw.get("queue")
        gpu_queue = env.get("EXECUTOR_GPU_QUEUE") or settings.raw.get("gpu_queue")
        if not redis_url:
            raise ConfigError(
                "no fleet to submit to: pass --redis redis://HOST:PORT or set EXECUTOR_REDIS_URL"
            )
        if not store_url:
            raise ConfigError(
                "the fleet's store is not named: pass --store s3://bucket/prefix (the store "
                "the workers were started with) or set EXECUTOR_STORE"
            )
        return cls(
            str(redis_url),
            store_url,
            str(queue or DEFAULT_QUEUE),
            str(gpu_queue or DEFAULT_GPU_QUEUE),
        )


def connect(redis_url: str, timeout: float | None = None) -> Any:
    """A Redis client that answered a PING; FleetError (one line) if none answers. With
    `timeout`, no call waits longer for an answer (not for a worker: RQ's dequeue blocks
    for minutes on purpose). Once connected, a lost connection is tried again with backoff
    for about REDIS_PATIENCE seconds, so a Redis restart (with its data kept: AOF) is
    ridden out by the coordinator, the workers and their jobs alike."""
    import redis

    try:  # a malformed URL is the user's to fix (exit 2), not an unreachable fleet (exit 3)
        parts = urlsplit(redis_url)
        _ = parts.port  # raises ValueError when out of range
        redis.connection.parse_url(redis_url)  # type: ignore[no-untyped-call]
        db = parts.path.strip("/")
        if parts.scheme in ("redis", "rediss") and db and not db.isdigit():
            raise ValueError(f"the database '{db}' is not a number")  # redis-py would use 0
    except ValueError as exc:
        raise ConfigError(
            f"{redact(redis_url)} is not a Redis URL ({redact(str(exc))}); write "
            "redis://HOST:PORT/DB, rediss:// or unix://PATH"
        ) from None
    try:
        client = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=5,
            socket_timeout=timeout,
            socket_keepalive=True,
            health_check_interval=30,
        )
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise FleetError(
            f"cannot reach Redis at {redact(redis_url)} ({redact(str(exc))}); start it or "
            "fix --redis"
        ) from None
    client.set_retry(_reconnecting(REDIS_PATIENCE))  # after the first answer: fail fast first
    return client


def _reconnecting(patience: float) -> Any:
    """Retries of a lost connection (never of a slow answer), with jittered exponential
    backoff, spanning about `patience` seconds."""
    import redis
    from redis.backoff import EqualJitterBackoff
    from redis.retry import Retry

    retries = math.ceil(patience / (0.75 * RECONNECT_CAP)) + 5  # the first ones are short
    return Retry(
        EqualJitterBackoff(cap=RECONNECT_CAP, base=0.1),
        retries,
        supported_errors=(redis.ConnectionError,),
    )
