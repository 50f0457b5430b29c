"""In-flight leases: one job at a time does the work of a run-cache key (with an image, a
queue, a store, an environment and a layout); another submission of the same work follows
that job instead of enqueueing its own. A lease names its job; it is judged by the job:
queued, running with a heartbeat, or finished is live; ended without a result, vanished or
silent is released (compare-and-delete) and taken over."""

from __future__ import annotations

import threading
import time
from typing import Any

from executor.fleet.keys import (
    CANCEL_TTL,
    ENDED_EVENTS_TTL,
    LEASE_GRACE,
    LEASE_TTL,
    LOST_AFTER,
    RELEASE,
    WAITING,
    alive_key,
    cancel_key,
    events_key,
    is_job_id,
    redis_errors,
)


class Leases:
    """The leases in `redis`, whose jobs are read with `serializer`."""

    def __init__(self, redis: Any, serializer: Any) -> None:
        self.redis = redis
        self.serializer = serializer

    def claim(self, lease: str, job_id: str, cancel: threading.Event, followed: set[str]) -> Any:
        """Take the lease for `job_id` (None), or the live job already holding it. A job in
        `followed` did not give us a result once: its lease is taken over, not followed."""
        with redis_errors("taking the in-flight lease"):
            while not cancel.is_set():
                if self.redis.set(lease, job_id, nx=True, ex=LEASE_TTL):
                    return None
                holder = self.redis.get(lease)
                if holder is None:
                    continue  # released just now
                if holder.decode("utf-8", "replace") == job_id:
                    return None  # ours: the SET went through, then its answer was lost
                if not is_job_id(holder.decode("utf-8", "replace")):
                    self.redis.eval(RELEASE, 1, lease, holder)  # not a job's: not followed
                    continue
                job, state = self.holder(holder.decode(), lease, cancel)
                if state == "young":
                    time.sleep(0.1)  # taken a moment ago; its job is being enqueued
                elif state == "live" and job.id not in followed:
                    return job
                else:
                    self.redis.eval(RELEASE, 1, lease, holder)  # its job is over or lost
        return None  # cancelled: the caller sees it before enqueueing anything

    def holder(self, job_id: str, lease: str, cancel: threading.Event) -> tuple[Any, str]:
        """The job holding a lease and whether it is 'live', 'young' (not enqueued yet) or
        'dead'. A finished job is live (following it adopts its result at once)."""
        from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
        from rq.job import Job

        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=self.serializer)
            status = job.get_status().value
        except (NoSuchJobError, InvalidJobOperation):
            young = LEASE_TTL - self.redis.ttl(lease) < LEASE_GRACE
            return None, "young" if young else "dead"
        except (DeserializationError, ValueError):
            return None, "dead"  # not a job RQ can read (written by hand): never followed
        if status in WAITING or status == "finished":
            return job, "live"
        if status == "started":
            # Its heartbeat starts as it starts; give a job just taken the time to beat once,
            # and one whose worker is cut off from Redis the time to come back (LOST_AFTER).
            deadline = time.monotonic() + LOST_AFTER
            while time.monotonic() < deadline and not cancel.is_set():
                if self.redis.exists(alive_key(job_id)):
                    return job, "live"
                time.sleep(0.25)
        return job, "dead"

    def release(self, lease: str, job_id: str) -> None:
        """Drop the lease if `job_id` still holds it; keep the job's stream a little longer
        for followers still reading it."""
        with redis_errors("releasing the in-flight lease"):
            self.redis.eval(RELEASE, 1, lease, job_id)
            self.redis.expire(events_key(job_id), ENDED_EVENTS_TTL)

    def give_up(self, job_id: str) -> None:
        """Ask a job taken for lost to stop, should it be alive after all."""
        with redis_errors("cancelling a lost job"):
            self.redis.set(cancel_key(job_id), "1", ex=CANCEL_TTL)
