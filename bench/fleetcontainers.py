"""The fleet as deployed: the same fan as bench/fleet.py, its stages taken by 1, 2 and 4
executor-worker *containers* (docker/worker, built here) rather than processes, against
`executor run -j W` here. The containers share the host's network namespace, to reach the
harness's redis-server and moto on 127.0.0.1, and mount their folder at the same path as on
the host. On this 2-core machine the curve is expected to flatten at 2 workers: beyond
that, more workers only queue for the same two cores.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.config import Config
from bench.fleet import READY_TIMEOUT, WORKERS, Fleet, first_runs
from bench.inputs import Inputs
from bench.results import Row
from bench.tools import Tools

ROOT = Path(__file__).resolve().parents[1]


def worker_image() -> str:
    build = ROOT / "docker" / "build-image.sh"
    done = subprocess.run([str(build), "worker"], check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


class ContainerFleet(Fleet):
    """A Fleet whose workers are containers of the worker image."""

    def __init__(self, config: Config, inputs: Inputs, image: str) -> None:
        super().__init__(config, inputs)
        self.image = image

    @contextmanager
    def workers(self, count: int) -> Iterator[None]:
        names = []
        home = self.inputs.fresh("worker-containers")
        passed = [f"{k}={v}" for k, v in self.env.items() if k.startswith(("EXECUTOR_", "AWS_"))]
        for i in range(count):
            name = f"executor-bench-worker-{os.getpid()}-{i}"  # two harnesses never collide
            args = ["docker", "run", "-d", "--name", name, "--network", "host", "--init",
                    "-v", "/var/run/docker.sock:/var/run/docker.sock",
                    "-v", f"{home}:{home}", "-e", f"EXECUTOR_WORKER_DIR={home}"]  # fmt: skip
            for item in passed:
                args += ["-e", item]
            subprocess.run([*args, self.image], check=True, capture_output=True)
            names.append(name)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while self.redis.workers() < count:
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker containers did not register with Redis")
                time.sleep(0.05)
            yield
        finally:
            subprocess.run(["docker", "stop", "-t", "60", *names], capture_output=True)
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    n = 4 if config.quick else 40
    fleet = ContainerFleet(config, inputs, worker_image())
    try:
        rows = first_runs(config, tools, inputs, fleet, n)
    finally:
        fleet.close()
    for row, count in zip(rows, WORKERS, strict=True):
        row.case = f"fan, {n} stages, {count} worker container{'s' if count > 1 else ''}"
        row.scenario = "fleet-containers"
        row.extra["containers"] = 1.0
        row.target = None  # bench/fleet.py's worker processes carry the 1.2x target
    return rows
