"""Which queue a stage's job goes to, and how RQ's own tools (rq info, rq-dashboard) name it.

A stage whose limits ask for GPUs goes to the GPU queue (EXECUTOR_GPU_QUEUE or `gpu_queue:`
in .executor.yaml, `gpu` by default), where only workers started with --gpus take jobs;
every other stage to the submission's queue (--queue)."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Any

from executor.fleet.config import FleetConfig
from executor.jobspec import JobSpec
from executor.limits import Limits


class Routes:
    """The submission's RQ queues, by name."""

    def __init__(self, redis: Any, config: FleetConfig, root: Path) -> None:
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.config = config
        self.queues = {
            name: Queue(name, connection=redis, serializer=JSONSerializer)
            for name in (config.queue, config.gpu_queue)
        }
        self.default = self.queues[config.queue]
        self.repository = f"{root.name} ({_user()}@{socket.gethostname()})"

    def queue_for(self, spec: JobSpec) -> Any:
        """The GPU queue for a stage that asks for GPUs, else the submission's queue."""
        gpus = Limits.from_meta(spec.executor_meta).gpus
        return self.queues[self.config.gpu_queue if gpus is not None else self.config.queue]

    def description(self, spec: JobSpec) -> str:
        return f"stage {spec.address} of {self.repository}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return str(os.getuid())
