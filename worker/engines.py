"""The Docker client a worker's jobs share, made once per worker process.

Made by the worker before it forks any work horse (`keep`), with its connections closed
there, so each horse opens its own on first use: no socket is shared across the fork, and
no job pays for a new client (its API version asked, the engine pinged: 30-40 ms).
"""

from __future__ import annotations

from typing import Any

from worker.config import WorkerConfig
from worker.sandbox.engine import DockerSandbox
from worker.sandbox.hostpaths import HostPaths

_client: list[Any] = []  # docker's DockerClient (only worker/sandbox imports docker)
_host_paths: list[HostPaths | None] = []  # where the engine sees the worker's folder


def keep(sandbox: DockerSandbox) -> None:
    """Keep `sandbox`'s client (an engine that answered) for this process's jobs; its open
    connections are closed now, before any fork."""
    sandbox.client.api.close()  # the pools are emptied; the client makes new connections
    _client[:] = [sandbox.client]
    _host_paths[:] = [sandbox.host_paths]


def job_sandbox(config: WorkerConfig, stop_grace: float) -> DockerSandbox:
    """A sandbox for one job, on the worker's client if it has one, else a new client
    (`run_job` called outside a started worker). It removes a finished container in the
    background: its close() waits for that."""
    kw: dict[str, Any] = {
        "stop_grace": stop_grace,
        "tmp_size": config.ceilings.tmp_size,
        "remove_in_background": True,
    }
    if _client:
        return DockerSandbox(_client[0], host_paths=_host_paths[0], **kw)
    return DockerSandbox.from_env(config.env, **kw)


def kept_client() -> Any | None:
    """The worker's client, if `keep` was called (in the worker process and its horses)."""
    return _client[0] if _client else None
