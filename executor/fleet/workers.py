"""The fleet's live workers as `executor workers` shows them: RQ's record of each (host,
queues, state, current job, heartbeat) with what the worker publishes itself (its local
cache use: worker/presence.py). Ages are measured on Redis's clock, never this host's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from executor.fleet.keys import is_job_id, redis_errors, worker_info_key


@dataclass(frozen=True)
class WorkerView:
    """One live worker."""

    name: str
    host: str
    pid: int | None
    queues: tuple[str, ...]
    state: str  # busy, idle, suspended, started
    stage: str | None  # the stage it runs, if busy
    job_id: str | None
    running_for: float | None  # seconds since its current job started
    heartbeat_age: float | None  # seconds since its last heartbeat
    cache_bytes: int | None
    cache_limit: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queues": list(self.queues)}


def _age(when: datetime | None, now: float) -> float | None:
    if when is None:
        return None
    stamp = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return max(0.0, now - stamp.timestamp())


def _int(value: bytes | None) -> int | None:
    """A count a worker published; None for anything else (a Redis writer's 400 digits
    would not even convert to a float)."""
    return int(value) if value is not None and value.isdigit() and len(value) <= 18 else None


def _current(redis: Any, job_id: str | None, now: float) -> tuple[str | None, float | None]:
    """The stage a job runs (as its spec names it) and for how long, if it can be read."""
    from rq.exceptions import DeserializationError, NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    if not job_id or not is_job_id(job_id):
        return None, None
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        args = job.args
        spec = args[0] if isinstance(args, list) and args else None
        started = job.started_at
    except (NoSuchJobError, DeserializationError, ValueError, TypeError):
        return None, None  # gone, or not a job RQ can read (written by hand)
    stage = spec.get("address") if isinstance(spec, dict) else None
    return (str(stage) if stage else None), _age(started, now)


def _workers(redis: Any) -> list[Any]:
    """RQ's record of each registered worker that RQ can read: a Redis writer may add any
    member to RQ's set of workers, or a worker hash with fields RQ cannot parse."""
    from rq import Worker
    from rq.worker_registration import REDIS_WORKER_KEYS

    found = []
    for member in sorted(redis.smembers(REDIS_WORKER_KEYS)):
        key = member.decode("utf-8", "replace")
        try:
            worker = Worker.find_by_key(key, connection=redis)
        except (ValueError, TypeError, KeyError):
            continue
        if worker is not None:
            found.append(worker)
    return found


def list_workers(redis: Any) -> list[WorkerView]:
    """Every worker registered with the fleet's Redis, by name."""
    with redis_errors("listing the workers"):
        seconds, micros = redis.time()
        now = seconds + micros / 1e6
        views = []
        for worker in sorted(_workers(redis), key=lambda w: str(w.name)):
            job_id = worker.get_current_job_id()
            stage, running_for = _current(redis, job_id, now)
            info = redis.hgetall(worker_info_key(worker.name))
            views.append(
                WorkerView(
                    name=worker.name,
                    host=worker.hostname or "",
                    pid=worker.pid,
                    queues=tuple(worker.queue_names()),
                    state=str(getattr(worker.get_state(), "value", worker.get_state())),
                    stage=stage,
                    job_id=job_id,
                    running_for=running_for,
                    heartbeat_age=_age(worker.last_heartbeat, now),
                    cache_bytes=_int(info.get(b"cache_bytes")),
                    cache_limit=_int(info.get(b"cache_limit")),
                )
            )
    return views
