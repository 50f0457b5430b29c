"""Following one RQ job to its end: its log relayed as it is printed, its outcome returned or
raised, Ctrl-C turned into a cancel request, a lost worker noticed by its missing heartbeat."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from executor.errors import (
    ExecutorError,
    InvalidJobSpec,
    JobLost,
    JobVanished,
    RemoteError,
    StageCancelled,
)
from executor.fleet.keys import (
    ALIVE_TTL,
    CANCEL_TTL,
    LOST_AFTER,
    WAITING,
    alive_key,
    cancel_key,
    events_key,
    redis_errors,
)
from executor.jobresult import JobResult, failure_from_dict
from executor.stageio import StageIO

POLL = 0.25  # seconds a quiet stream is waited on before the job's status is looked at
ALIVE_CHECK = 2.0  # seconds between looks at a running job's heartbeat
NO_WORKER_HINT = 30.0  # seconds queued before saying no worker takes from the queue


class Follow:
    """One job followed until it ends (see `result`)."""

    def __init__(
        self,
        redis: Any,
        job: Any,
        address: str,
        io: StageIO,
    ) -> None:
        self.redis, self.job, self.address = redis, job, address
        self.io = io
        self.last = "0-0"
        self.outcome: list[Any] = []  # the job's return value, as its last event carries it

    def relay(self, block: int | None) -> bool:
        """Pass on the events after the last one seen; whether there were any."""
        with redis_errors("reading the job's output"):
            found = self.redis.xread({events_key(self.job.id): self.last}, count=500, block=block)
        for _, events in found or []:
            for event_id, fields in events:
                self.last = event_id
                kind = fields.get(b"t")
                value = fields.get(b"v", b"").decode("utf-8", "replace")
                if kind == b"log":
                    self.io.log(value)
                elif kind == b"line" and value.isdigit():
                    self.io.line(int(value))
                elif kind == b"end":
                    with suppress(ValueError):  # RQ keeps the return value too
                        self.outcome.append(json.loads(value))
        return bool(found)

    def status(self) -> str:
        from rq.exceptions import InvalidJobOperation, NoSuchJobError

        with redis_errors("reading the job's status"):
            try:
                status = self.job.get_status(refresh=True)
            except (NoSuchJobError, InvalidJobOperation):
                status = None
        if status is None:
            raise JobVanished(
                f"stage '{self.address}': its job {self.job.id} vanished from Redis (evicted "
                "or emptied?); set Redis's maxmemory-policy to noeviction and submit again"
            )
        return str(status.value)

    def result(self, cancel: threading.Event, *, own: bool, queue: Any) -> JobResult:
        """Relay the job until it ends; its result, or its failure raised. Ctrl-C cancels
        an `own` job (and waits for it to stop); it only stops following another's."""
        cancelled = False
        seen_running: float | None = None
        missing_since: float | None = None  # when the job's heartbeat was first found missing
        checked = queued = time.monotonic()
        hinted = False
        while True:
            if cancel.is_set():
                if not own:
                    raise StageCancelled(self.address)
                if not cancelled:
                    cancelled = True
                    self.cancel()
            if self.relay(int(POLL * 1000)):
                if self.outcome:  # done: no need to wait for RQ to say so
                    return outcome(self.outcome[-1], self.job.id, self.address)
                continue  # drain the stream before looking at the status again
            status = self.status()
            now = time.monotonic()
            if status in WAITING:
                if cancelled:
                    self.cancel()  # requeued after the request: make sure it never starts
                if not hinted and now - queued > NO_WORKER_HINT:
                    queued = now  # a busy fleet is asked again only as often
                    if not _workers(queue):
                        hinted = True
                        self.io.log(
                            f"executor: no worker takes jobs from queue '{queue.name}'; start "
                            f"`executor-worker --queue {queue.name}` (this job waits for one)"
                        )
                continue
            if status == "started":
                seen_running = seen_running or now
                if now - checked > ALIVE_CHECK and now - seen_running > ALIVE_TTL:
                    checked = now
                    with redis_errors("looking at the job's heartbeat"):
                        alive = self.redis.exists(alive_key(self.job.id))
                    # A heartbeat missing once is not yet a lost worker: a Redis restarted
                    # after more than ALIVE_TTL has let every heartbeat expire, and the
                    # workers beat again only once they have reconnected. Missing for
                    # LOST_AFTER, it is (keys.py: the worker has stopped its stage by then).
                    missing_since = None if alive else (missing_since or now)
                    if missing_since is not None and now - missing_since >= LOST_AFTER:
                        raise JobLost(f"stage '{self.address}': the worker running it was lost")
                continue
            while self.relay(None):  # what was written just before it ended
                pass
            if self.outcome:
                return outcome(self.outcome[-1], self.job.id, self.address)
            if status == "canceled":
                raise StageCancelled(self.address)
            if status == "finished":
                return outcome(self.job.return_value(refresh=True), self.job.id, self.address)
            raise crashed(self.job, self.address, status)

    def cancel(self) -> None:
        """Ask for the stage to stop: a queued job never starts (the worker looks for the
        request first); a running one has its container signalled and given its grace."""
        from rq.exceptions import InvalidJobOperation, NoSuchJobError

        with redis_errors("cancelling the job"):
            self.redis.set(cancel_key(self.job.id), "1", ex=CANCEL_TTL)
            with suppress(NoSuchJobError, InvalidJobOperation):
                if self.job.get_status(refresh=True).value in WAITING:
                    self.job.cancel()


def _workers(queue: Any) -> int:
    from rq import Worker

    with redis_errors("listing workers"):
        return len(Worker.all(queue=queue))


def outcome(value: Any, job_id: str, address: str) -> JobResult:
    """The result a job returned, or the error it returned raised."""
    if not isinstance(value, Mapping):
        raise RemoteError(f"stage '{address}': its job {job_id} returned no result")
    if not value.get("ok"):
        failure = value.get("failure")
        raise failure_from_dict(failure if isinstance(failure, Mapping) else {}, address)
    try:
        return JobResult.from_dict(value.get("result") or {})
    except InvalidJobSpec as exc:
        raise RemoteError(f"stage '{address}': its job {job_id} returned {exc}") from None


def crashed(job: Any, address: str, status: str) -> ExecutorError:
    """A job that ended without an outcome. Failed: its work horse crashed or was killed
    (out of memory, a signal), which is the worker's trouble, not the stage's, so it is
    lost and runs again. Stopped: someone stopped it on purpose (RQ's stop-job)."""
    result = job.latest_result()
    text = (getattr(result, "exc_string", None) or "").strip()
    last = text.splitlines()[-1] if text else "no reason recorded"
    if status == "failed":
        return JobLost(f"stage '{address}': its job {job.id} died on the worker ({last})")
    return RemoteError(
        f"stage '{address}': its job {job.id} was {status} on the worker ({last}); submit "
        "again to run it"
    )
