"""A worker's part in detached runs (executor.fleet.advance): a job of a run starts only if
it is still its stage's job and the run was not cancelled, and its end moves the run on."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any

from executor.errors import ExecutorError, StageCancelled
from executor.fleet.advance import RunSteps
from executor.fleet.runs import Runs
from executor.jobspec import JobSpec
from executor.settings import Settings
from worker.config import worker_config
from worker.stores import store_for

log = logging.getLogger(__name__)


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


def start(redis: Any, job: Any, bound: tuple[str, str]) -> None:
    """Mark the stage running; StageCancelled if the job must not run it (cancelled, or
    replaced by another job of the stage)."""
    run_id, address = bound
    if not RunSteps(redis).starting(run_id, address, job.id, worker_name(job)):
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
        steps(redis).finished(run_id, address, job_id, JobSpec.from_dict(spec), outcome)
    except Exception as exc:
        log.exception("job %s: cannot move run %s on: %s", job_id, run_id, exc)


def lost(redis: Any, job_id: str) -> None:
    """A job whose worker was lost: its stage in its run runs again, or fails."""
    try:
        steps(redis).lost(job_id)
    except Exception as exc:
        log.warning("job %s: cannot requeue its stage: %s", job_id, exc)
