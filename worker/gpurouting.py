"""Stages asking for GPUs run only where there are GPUs.

The coordinator sends them to the GPU queue (EXECUTOR_GPU_QUEUE, `gpu` by default). A worker
without GPUs refuses to start on that queue, and a GPU job that reaches it on another queue
(an older coordinator's, a queue named by hand) is moved to the GPU queue, under the same job
id, instead of being failed: whoever follows the job sees it queued again, for a GPU worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from executor.errors import ConfigError
from executor.limits import Limits
from worker.config import WorkerConfig

log = logging.getLogger(__name__)


def check_gpu_queue(queues: Iterable[str], config: WorkerConfig) -> None:
    """A worker without GPUs on the GPU queue would take jobs it can only refuse."""
    if config.gpu_queue in queues and not config.ceilings.gpus.count:
        raise ConfigError(
            f"this worker has no GPUs but takes jobs from the GPU queue '{config.gpu_queue}': "
            "start it with --gpus (a count, all, or device=0,1) or without that --queue"
        )


def asks_for_gpus(job: Any) -> bool:
    """Whether a job's spec asks for GPUs; a spec that cannot be read asks nothing (the
    job is refused when it runs). Whatever a Redis writer put in the job (data that is not
    JSON, arguments that are a mapping, a count too large for a float), this never raises:
    it runs in RQ's main loop, where any error stops the worker."""
    try:
        args = job.args
        spec = args[0] if isinstance(args, list | tuple) and args else None
        meta = spec.get("executor_meta") if isinstance(spec, Mapping) else None
        return Limits.from_meta(meta if isinstance(meta, Mapping) else None).gpus is not None
    except Exception:  # DeserializationError, OverflowError, ExecutorError, ...
        return False


def moved_to_gpu_queue(job: Any, queue: Any, config: WorkerConfig) -> bool:
    """Move a GPU job this worker cannot run to the GPU queue; whether it was moved."""
    if config.ceilings.gpus.count or queue.name == config.gpu_queue or not asks_for_gpus(job):
        return False
    from rq import Queue

    target = Queue(config.gpu_queue, connection=queue.connection, serializer=queue.serializer)
    # In one transaction: a Redis lost between the two would leave the job in no queue (lost)
    # or in both (run twice: RQ fails what it finds stuck in the intermediate queue).
    # (RQ's enqueue_job would WATCH inside the transaction; a stage job has no dependency
    # to set up, so the job is queued the way enqueue_job queues one without.)
    job.origin = target.name
    with queue.connection.pipeline() as pipe:
        pipe.lrem(queue.intermediate_queue.key, 1, job.id)
        pipe.sadd(target.redis_queues_keys, target.key)
        target._enqueue_job(job, pipeline=pipe)
        pipe.execute()
    log.warning(
        "job %s asks for GPUs and this worker has none: moved to the queue '%s'",
        job.id, config.gpu_queue,
    )  # fmt: skip
    return True
