"""A worker's part in detached runs (executor.fleet.advance): a job of a run starts only if
it is still its stage's job and the run was not cancelled, and its end moves the run on."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rq.serializers import JSONSerializer

from executor.errors import ExecutorError, InvalidJobSpec, StageCancelled
from executor.fleet.advance import RunSteps
from executor.fleet.keys import LOST_AFTER, WAITING, alive_key, lease_key
from executor.fleet.leases import Leases
from executor.fleet.runs import Runs
from executor.fleet.templates import key_of, restored_entry
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.runcache import env_digest
from executor.settings import Settings
from worker.config import worker_config
from worker.stores import store_for

log = logging.getLogger(__name__)

WAIT_POLL = 0.5  # seconds between looks at a job doing the same work elsewhere


def worker_name(job: Any) -> str:
    return str(getattr(job, "worker_name", None) or socket.gethostname())


def steps(redis: Any) -> RunSteps:
    """The run moves with this worker's store (for run-cache lookups of stages decided
    here)."""
    config = worker_config()
    return RunSteps(
        redis, store_for(config.store_url, Settings.from_env(config.env)), config.store_url
    )


def bound_run(redis: Any, job_id: str) -> tuple[str, str] | None:
    """The run and stage the job works for, if any."""
    try:
        return Runs(redis).job_of(job_id)
    except ExecutorError as exc:
        log.warning("job %s: cannot read its run: %s", job_id, exc)
        return None


def run_once(
    redis: Any,
    job: Any,
    bound: tuple[str, str],
    spec: JobSpec,
    cancel: threading.Event,
    run: Callable[[JobSpec], JobResult],
) -> dict[str, Any]:
    """Run a detached run's stage unless its work is done or being done already: a
    run-cache hit is taken (restored, no container); the in-flight lease of the work (the
    one attached submissions take, fleet.leases) is held while the stage runs. Another
    job holding it that is running is waited for, then its run taken from the run-cache;
    one still queued goes first: this job is enqueued again behind it."""
    run_id, address = bound
    moves = steps(redis)
    if not moves.starting(run_id, address, job.id, worker_name(job)):
        raise StageCancelled(address)
    lease = work_lease(spec, job.origin, moves.store_url) if spec.cacheable else None
    leases = Leases(redis, JSONSerializer())
    while lease is not None:
        other = leases.claim(lease, job.id, cancel, set())
        if other is None:  # ours: a job that held it before has recorded its run by now
            entry, digest = moves.cached(spec)
            if entry is None:
                break
            leases.release(lease, job.id)
            result = JobResult(address, restored_entry(spec, entry), digest, 0.0)
            return {"ok": True, "result": result.to_dict(), "restored": True}
        if other.get_status(refresh=True).value in WAITING:
            moves.enqueue(run_id, address, spec, job.origin, after=("running",), replacing=job.id)
            failure = {
                "kind": "requeued",
                "message": f"stage '{address}': requeued behind {other.id}",
            }
            return {"ok": False, "failure": failure}
        _wait_for(redis, other, cancel, address)
    try:
        return {"ok": True, "result": run(spec).to_dict()}
    finally:
        if lease is not None:
            leases.release(lease, job.id)


def work_lease(spec: JobSpec, queue: str, store_url: str) -> str:
    """The lease of this work, as an attached submission names it (fleet.backend)."""
    context = f"{env_digest(spec.env)}:{spec.layout()}"
    return lease_key(key_of(spec), spec.image, queue, store_url, context)


def _wait_for(redis: Any, job: Any, cancel: threading.Event, address: str) -> None:
    """Until another worker's job ends, or its heartbeat stops (lost)."""
    missing = 0
    while not cancel.is_set():
        if job.get_status(refresh=True).value not in ("started", *WAITING):
            return
        missing = 0 if redis.exists(alive_key(job.id)) else missing + 1
        if missing * WAIT_POLL > LOST_AFTER:
            return
        time.sleep(WAIT_POLL)
    raise StageCancelled(address)


def finish(
    redis: Any,
    job_id: str,
    bound: tuple[str, str],
    spec: Mapping[str, Any],
    outcome: Mapping[str, Any],
) -> None:
    """Record the job's outcome in its run and decide what waited for it. A failure here
    is logged: the outcome is in the job's stream and RQ's record already."""
    run_id, address = bound
    try:
        parsed: JobSpec | None = JobSpec.from_dict(spec)
    except InvalidJobSpec:
        parsed = None  # refused: the stage fails, and is not run again
    try:
        steps(redis).finished(run_id, address, job_id, parsed, outcome)
    except Exception as exc:
        log.exception("job %s: cannot move run %s on: %s", job_id, run_id, exc)


def lost(redis: Any, job_id: str) -> None:
    """A job whose worker was lost: its stage in its run runs again, or fails."""
    try:
        steps(redis).lost(job_id)
    except Exception as exc:
        log.warning("job %s: cannot requeue its stage: %s", job_id, exc)
