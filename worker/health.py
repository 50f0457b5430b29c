"""`python -m worker.health`: a container's health check. Exit status 0 while a worker of this
host (or container) is registered in the fleet's Redis, its process alive here and its
heartbeat fresh by Redis's clock, and the Docker engine it drives answers; 1, saying why,
otherwise."""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime

from executor.errors import ExecutorError
from executor.fleet.config import connect
from executor.processes import pid_alive
from worker.lostjobs import SWEEP_EVERY
from worker.sandbox.engine import DockerSandbox

STALE = SWEEP_EVERY + 15  # seconds: a worker's RQ time to live (worker.service)


def problem(redis_url: str) -> str | None:
    """Why this host's worker is not healthy, or None."""
    from rq import Worker

    redis = connect(redis_url)
    now = datetime.fromtimestamp(float(redis.time()[0]), UTC)
    host = socket.gethostname()
    mine = [w for w in Worker.all(connection=redis) if w.hostname == host]
    if not mine:
        return f"no worker of {host} is registered in Redis"
    for worker in mine:
        beat = worker.last_heartbeat
        if beat is None or not pid_alive(int(worker.pid or 0)):
            continue
        beat = beat if beat.tzinfo else beat.replace(tzinfo=UTC)
        if (now - beat).total_seconds() <= STALE:
            return _engine_problem()
    return f"the worker of {host} has sent no heartbeat for over {STALE} s"


def _engine_problem() -> str | None:
    """Why the Docker engine this worker drives does not answer, or None."""
    try:
        DockerSandbox.from_env(os.environ).client.close()
    except ExecutorError as exc:
        return str(exc)
    return None


def main() -> None:
    url = os.environ.get("EXECUTOR_REDIS_URL", "")
    if not url:
        sys.exit("unhealthy: EXECUTOR_REDIS_URL is not set")
    try:
        why = problem(url)
    except ExecutorError as exc:
        why = str(exc)
    except Exception as exc:  # Redis unreachable or a record unreadable: unhealthy, said why
        why = f"{type(exc).__name__}: {exc}"
    if why is not None:
        sys.exit(f"unhealthy: {why}")


if __name__ == "__main__":
    main()
