"""Finishing off RQ's records of jobs whose worker was lost.

A worker killed without a word (SIGKILL, a lost host) leaves its job in RQ's started
registry. RQ itself moves such a job to the failed registry only once its last RQ heartbeat
is older than the monitoring interval plus a minute, and only at a maintenance pass (every
ten minutes by default). executor knows sooner: a running job renews its alive key every few
seconds (`fleet.keys.alive_key`). At each maintenance pass (`SWEEP_EVERY`) a worker marks every
started job without an alive key; a job still without one `LOST_AFTER` seconds later (by
Redis's clock, never a host's) is given an expiry in the past, so RQ's own cleanup then
fails it the way it fails any abandoned job (status failed, the failed registry). The
coordinator has already run such a job again under a new id: this only keeps `rq info`,
dashboards and the registries from showing a dead job as started forever.
"""

from __future__ import annotations

from typing import Any

from executor.fleet.keys import ALIVE_TTL, LOST_AFTER, alive_key, is_job_id

SWEEP_EVERY = 30  # seconds between a worker's maintenance passes (RQ's default is 600)
UNSEEN_TTL = 10 * ALIVE_TTL  # how long a mark lives; a mark older than that is renewed


def unseen_key(job_id: str) -> str:
    """Set (to Redis's time) when a started job was first seen without its alive key."""
    return f"executor:job:{job_id}:unseen"


def _job_id(member: bytes) -> str | None:
    """The job id of a started registry's member (`job_id:execution_id`), if it is one: a
    Redis writer may add anything there, which must not stop the sweep of the others."""
    job_id, _, _ = member.decode("utf-8", "replace").partition(":")
    return job_id if is_job_id(job_id) else None


def _first_unseen(redis: Any, job_id: str, now: int) -> int:
    """When a started job was first seen without its alive key (now, if this is the first
    time, or if the mark is not one this sweep wrote: a Redis writer's)."""
    key = unseen_key(job_id)
    redis.set(key, now, nx=True, ex=UNSEEN_TTL)
    first = redis.get(key)
    if first is None or not first.isdigit() or len(first) > 12 or int(first) > now:
        redis.set(key, now, ex=UNSEEN_TTL)
        return now
    return int(first)


def expire_lost_jobs(registry: Any, redis: Any) -> list[str]:
    """Give the lost jobs of RQ's started `registry` an expiry in the past; their ids."""
    now = int(redis.time()[0])
    lost = []
    for member in redis.zrange(registry.key, 0, -1):
        job_id = _job_id(member)
        if job_id is None:
            continue  # not a job's (RQ's own cleanup judges it by its score)
        if redis.exists(alive_key(job_id)):
            redis.delete(unseen_key(job_id))
            continue
        if now - _first_unseen(redis, job_id, now) >= LOST_AFTER:
            redis.zadd(registry.key, {member: 0}, xx=True)  # only if RQ has not removed it
            redis.delete(unseen_key(job_id))
            lost.append(job_id)
    return lost
