"""`executor cancel RUN [STAGE]`: a run's (or one stage's) jobs stopped from any shell."""

from __future__ import annotations

import time
from dataclasses import replace

from executor.fleet.advance import RunSteps
from executor.fleet.keys import CANCEL_TTL, WAITING, cancel_key
from executor.fleet.runs import LIVE


def cancel_run(steps: RunSteps, run_id: str, address: str | None = None) -> list[str]:
    """Cancel the run (or one stage): waiting and queued stages never start, running ones
    are stopped by their workers (SIGINT, then SIGKILL after the grace). The stages
    asked to stop."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    info = steps.runs.info(run_id)
    if address is None and info.state == "running":
        info.state = "cancelled"
        steps.runs.set_info(info)
    asked = []
    for name, state in steps.runs.stages(run_id).items():
        if (address is not None and name != address) or state.state not in LIVE:
            continue
        asked.append(name)
        if state.job:
            steps.redis.set(cancel_key(state.job), "1", ex=CANCEL_TTL)
            try:
                job = Job.fetch(state.job, connection=steps.redis, serializer=JSONSerializer)
                if job.get_status().value in WAITING:
                    job.cancel()
            except (NoSuchJobError, InvalidJobOperation, ValueError):
                pass
        if state.state in ("waiting", "queued"):
            steps.runs.move(
                run_id,
                name,
                ("waiting", "queued"),
                replace(state, state="cancelled", ended=time.time()),
            )
    steps.advance(run_id)
    return asked
