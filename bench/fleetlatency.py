"""Two fleet figures of issue 12 beside the per-job cost (bench.fleet):

- From enqueue to the container starting, less the container's own create and start: a
  chain submitted to one idle worker (each job finds it waiting), the enqueue time from RQ's
  record of the job and the start from the worker's log (the sandbox logs when each
  container has started and how long creating and starting it took).
- `executor submit --detach` of a fan whose inputs are in the fleet's store already: the wall
  time of the command (no worker runs; the jobs stay queued).
"""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench import pipelines
from bench.config import Config
from bench.firstrun import check_outputs
from bench.inputs import Inputs
from bench.measure import Stats
from bench.results import Row, Target

if TYPE_CHECKING:
    from bench.fleet import Fleet

STARTED = re.compile(
    r"container executor-(executor-[0-9a-f]{32})-\S* started at ([0-9.]+); "
    r"creating and starting it took ([0-9.]+) s"
)
LATENCY = Target(
    "under 50 ms from enqueue to the container starting, less the start itself (median)",
    "count",
    50.0,
    key="latency_ms",
)
DETACH = Target("submit --detach of 100 stages, inputs in the store: under 1 s", "seconds", 1.0)


def starts(logs: list[Path]) -> dict[str, tuple[float, float]]:
    """job id -> (epoch seconds its container had started, seconds creating and starting
    took), from the workers' logs."""
    found = {}
    for log in logs:
        for match in STARTED.finditer(log.read_text(errors="replace")):
            found[match[1]] = (float(match[2]), float(match[3]))
    return found


def _epoch(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def start_latency(config: Config, inputs: Inputs, fleet: Fleet) -> Row:
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from bench.fleet import submit

    n = 3 if config.quick else 12
    fleet.new_bucket()
    repo = pipelines.copy_repo(inputs.template("chain", n), inputs.fresh("latency"))
    with fleet.workers(1):
        submit(fleet, repo)
    check_outputs(repo, "chain", n)
    samples, engine = [], []
    for job_id, (started, took) in starts(fleet.logs).items():
        job = Job.fetch(job_id, connection=fleet.redis.client, serializer=JSONSerializer)
        samples.append(started - _epoch(job.enqueued_at) - took)
        engine.append(took)
    if not samples:
        raise RuntimeError("the worker's log names no container start")
    stats = Stats(tuple(samples))
    return Row(
        "fleet",
        f"enqueue to container start, less the start itself (chain of {n}, 1 idle worker)",
        "—",
        stats,
        target=LATENCY,
        extra={"latency_ms": stats.median * 1000},
        note=f"{len(samples)} jobs; the engine's create and start took a median "
        f"{statistics.median(engine) * 1000:.0f} ms beside it (not counted)",
    )


def detached(config: Config, inputs: Inputs, fleet: Fleet) -> Row:
    from bench.fleet import Copies, submit

    n = 4 if config.quick else 100
    fleet.new_bucket()
    fresh = Copies(inputs, n)
    submit(fleet, fresh("detach-first"), "--detach")  # the inputs go into the store
    samples = []
    for _ in range(max(config.rounds, 3)):
        samples.append(submit(fleet, fresh("detach"), "--detach"))
    return Row(
        "fleet",
        f"submit --detach, fan of {n} stages, inputs in the store",
        "—",
        Stats(tuple(samples)),
        target=DETACH,
        note="wall time of the command; no worker runs, the jobs stay queued",
    )
