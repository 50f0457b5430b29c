"""RQ's classes as a worker uses them: a Job that resolves to the stage entry point or to
nothing (no other function, callback, webhook or dependent job, whatever a Redis writer
enqueues), and a forking Worker that takes no pubsub commands, cleans up after a work
horse that was killed and finishes off the RQ records of jobs whose worker was lost."""

from __future__ import annotations

import logging
import os
import signal
from contextlib import suppress
from typing import Any

from executor.errors import ExecutorError, RefusedJob
from executor.fleet.keys import JOB_FUNCTION, is_job_id
from worker import engines, runjobs
from worker.config import worker_config
from worker.fleetjob import run_job
from worker.gpurouting import moved_to_gpu_queue
from worker.jobdirs import remove_stale_workspaces
from worker.localcache import bytes_used
from worker.lostjobs import expire_lost_jobs
from worker.presence import publish
from worker.sandbox.engine import DockerSandbox, owner_alive, reap

log = logging.getLogger(__name__)


def refusal(job: Any) -> str | None:
    """Why `job` is not a stage job the worker may run, or None. Whoever can write to Redis
    can put any job on the queue: only `run_job(spec, store_url)` runs, with no callback
    (RQ imports and calls those by name), no webhook and no dependency."""
    if not isinstance(job.id, str) or not is_job_id(job.id):
        return "its id is not a job id"
    try:
        name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except Exception:  # a pickled job (never unpickled: the serializer is JSON), or garbage
        return "its data is not a JSON job"
    if name != JOB_FUNCTION or instance is not None:
        return f"it calls {str(name)[:100]!r}, not the stage entry point {JOB_FUNCTION}"
    if kwargs or not isinstance(args, list | tuple) or len(args) != 2:
        return "its arguments are not a job spec and a store URL"
    if not isinstance(args[0], dict) or not isinstance(args[1], str):
        return "its arguments are not a job spec and a store URL"
    for kind in ("success", "failure", "stopped"):
        if getattr(job, f"_{kind}_callback_name", None):
            return f"it names an on_{kind} callback"
    if getattr(job, "webhooks", None):
        return "it names webhooks"
    if getattr(job, "_dependency_ids", None):
        return "it depends on other jobs"
    return None


def stage_job_class() -> type[Any]:
    """RQ's Job that resolves to `run_job` or to nothing: a refused job raises RefusedJob
    where RQ would import its function, and no callback or webhook is ever resolved, also
    where RQ's registries clean up after a job (a failure callback) on their own."""
    from rq.job import Job

    class StageJob(Job):
        @classmethod
        def fetch(cls, id: str, connection: Any = None, serializer: Any = None) -> Any:
            # RQ's worker quits on any error here (an id RQ itself rejects, a hash that does
            # not load): as "no such job", it is skipped and dropped by RQ's cleanup.
            from rq.exceptions import NoSuchJobError

            try:
                return super().fetch(id, connection=connection, serializer=serializer)
            except NoSuchJobError:
                raise
            except Exception as exc:
                log.error("refused job %r: it cannot be read (%s)", str(id)[:100], exc)
                raise NoSuchJobError(f"job {str(id)[:100]!r} cannot be read") from None

        @property
        def func(self) -> Any:
            problem = refusal(self)
            if problem is not None:
                log.error("refused job %r: %s", str(self.id)[:100], problem)
                raise RefusedJob(f"refused job: {problem}")
            return run_job

        @property
        def success_callback(self) -> None:
            return None

        @property
        def failure_callback(self) -> None:
            return None

        @property
        def stopped_callback(self) -> None:
            return None

        def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
            return None

    return StageJob


def stage_worker_class() -> type[Any]:
    """RQ's forking Worker, cleaning up after a work horse that was killed."""
    from rq import Worker

    class StageWorker(Worker):
        def subscribe(self) -> None:
            """RQ's commands over pubsub (kill-horse, stop-job, shutdown) are not taken: any
            Redis writer can send them, a killed horse skips executor's cleanup, and a
            stage is cancelled through executor's own key instead. (RQ's listener also held
            a warm shutdown for up to a minute with redis-py 8.)"""

        def unsubscribe(self) -> None:
            """Nothing subscribed."""

        def handle_warm_shutdown_request(self) -> None:
            """SIGTERM (or Ctrl-C) on the worker: RQ takes no new job and waits for the work
            horse; the horse is told too, so its stage gets the drain grace (jobwatch)."""
            super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]
            if self.horse_pid:
                with suppress(ProcessLookupError):
                    os.kill(self.horse_pid, signal.SIGTERM)

        def execute_job(self, job: Any, queue: Any) -> None:
            """Run the job, unless it asks for GPUs this worker does not have (gpurouting).
            A job that is not a stage job is never passed on: it is refused here (failed)."""
            if refusal(job) is not None or not moved_to_gpu_queue(job, queue, worker_config()):
                super().execute_job(job, queue)

        def clean_registries(self) -> None:
            """RQ's maintenance, once the jobs of lost workers are due for it (lostjobs);
            this worker's state for `executor workers` renewed (presence)."""
            _maintain(self.connection, self.name, self.queues)
            super().clean_registries()  # type: ignore[no-untyped-call]

        def handle_work_horse_killed(
            self, job: Any, retpid: int, ret_val: int, rusage: Any
        ) -> None:
            # Its `finally` never ran: the folder is left, the container perhaps still
            # running (the stage can kill its own watchdog). The container goes first: the
            # folder is walked only once no process of the stage is left to swap a folder
            # for a link while it is walked.
            super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
            _clean_after_killed_horse()
            if job is not None:
                runjobs.lost(self.connection, job.id)  # a detached run's stage runs again

    return StageWorker


def _maintain(redis: Any, name: str, queues: list[Any]) -> None:
    """A worker's share of the fleet's upkeep, at each of its maintenance passes."""
    try:
        publish(redis, name, worker_config())
    except Exception as exc:  # Redis away, the cache folder unreadable: next pass
        log.warning("cannot publish this worker's state: %s", exc)
    for queue in queues:
        try:
            lost = expire_lost_jobs(queue.started_job_registry, redis)
        except Exception as exc:  # Redis away: the next pass tries again
            log.warning("cannot look for lost jobs on %s: %s", queue.name, exc)
            continue
        for job_id in lost:
            log.warning("job %s: its worker is gone; marked failed", job_id)
            runjobs.lost(redis, job_id)  # a detached run's stage runs again
    _reap_orphans()


def _reap_orphans() -> None:
    """Remove the containers of workers gone from this engine (a killed worker container's
    stages): at a start, only a worker with the same folder would find them."""
    client = engines.kept_client()
    if client is None:
        return
    try:
        reap(client, is_alive=owner_alive(client))
    except ExecutorError as exc:
        log.warning("cannot look for containers of lost workers: %s", exc)
    finally:
        client.api.close()  # no connection open across the next work horse's fork


def _clean_after_killed_horse() -> None:
    """What a killed work horse left: its container, then its job folder."""
    try:
        sandbox = DockerSandbox.from_env(worker_config().env)
        reap(sandbox.client, is_alive=owner_alive(sandbox.client))
    except ExecutorError as exc:
        log.warning(
            "cannot remove the killed job's container: %s; its folder is left for "
            "the next start of a worker with this --dir",
            exc,
        )
        return
    remove_stale_workspaces(worker_config().home)
    bytes_used(worker_config().home / "cache")  # what it fetched is counted (localcache)
