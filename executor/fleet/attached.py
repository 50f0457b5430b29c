"""An attached `executor submit` as a fleet run: recorded in Redis like a detached one, so
`executor runs`, `status`, `logs` and `cancel` see and steer it from any shell. The
submitting process stays its coordinator: it writes each stage's job as it enqueues it and
each stage's state as it settles (at most every LOCK_INTERVAL, as dvc.lock), and looks for
a cancel request before enqueueing anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from executor.coordinator.types import RunSummary
from executor.errors import StageCancelled
from executor.fleet.runrecords import RunInfo, StageState, new_run_id, who
from executor.fleet.runs import Runs
from executor.jobresult import failure_to_dict

# The runner's words for a settled stage -> the run record's.
STATES = {
    "skipped": "skipped",
    "verified": "skipped",
    "restored": "restored",
    "ran": "ran",
    "failed": "failed",
    "not run": "not run",
    "cancelled": "cancelled",
}


class AttachedRun:
    """The record of one attached submission."""

    def __init__(
        self, root: str, store_url: str, order: list[str], announce: Callable[[str], None]
    ) -> None:
        user, host = who()
        self.info = RunInfo(
            id=new_run_id(),
            user=user,
            host=host,
            repo=root,
            created=time.time(),
            store_url=store_url,
            order=order,
            waits={},
            detached=False,
        )
        self.announce = announce
        self.runs: Runs | None = None  # until the submission first needs the fleet
        self.written: dict[str, str] = {}

    def start(self, redis: Any) -> None:
        """Record the run, once the submission needs the fleet (its backend is made): a
        submission with nothing to look up or run needs no Redis, and records nothing."""
        self.runs = Runs(redis)
        states = {a: StageState(state="waiting") for a in self.info.order}
        self.runs.create(self.info, {}, states)
        run_id = self.info.id
        self.announce(f"executor: fleet run {run_id} (`executor status {run_id}` from any shell)")

    @property
    def _runs(self) -> Runs:
        assert self.runs is not None, "AttachedRun.start first"
        return self.runs

    def enqueued(self, address: str, job_id: str, queue: str, *, follows: bool = False) -> None:
        """The stage's job: its own, or another submission's it follows."""
        state = StageState(
            state="queued",
            job=job_id,
            queue=queue,
            queued=time.time(),
            note="follows the same work submitted elsewhere" if follows else "",
        )
        self._runs.move(self.info.id, address, ("waiting", "queued", "running"), state)

    def cancelled(self) -> bool:
        return self._runs.info(self.info.id).state == "cancelled"

    def check(self, address: str) -> None:
        """StageCancelled if the run was cancelled from another shell."""
        if self.cancelled():
            raise StageCancelled(address)

    def progress(self, summary: RunSummary) -> None:
        """Write the states of the stages that settled since the last call."""
        if self.runs is None:
            return
        now = time.time()
        for address, status in list(summary.status.items()):
            state = STATES.get(status)
            if state is None or self.written.get(address) == status:
                continue
            error = summary.errors.get(address)
            if isinstance(error, StageCancelled):
                state = "cancelled"
            old = self._runs.stage(self.info.id, address)
            self.written[address] = status
            if old.state == "cancelled":
                continue  # cancelled from another shell: it stays so
            new = replace(
                old,
                state=state,
                started=old.started or now,
                ended=now,
                error=failure_to_dict(error) if error is not None else None,
            )
            self._runs.move(self.info.id, address, ("*",), new)

    def finish(self, summary: RunSummary) -> None:
        """The run's states once the submission ends."""
        if self.runs is None:
            return
        self.progress(summary)
        info = self._runs.info(self.info.id)
        stages = self._runs.stages(self.info.id)
        if summary.interrupted or any(s.state == "cancelled" for s in stages.values()):
            info.state = "cancelled"
        elif summary.ok:
            info.state = "succeeded"
        else:
            info.state = "failed"
        for address, state in stages.items():
            if state.state in ("waiting", "queued", "running"):
                self._runs.move(
                    self.info.id, address, ("*",), replace(state, state=_left(info.state))
                )
        info.ended = time.time()
        self._runs.set_info(info)


def _left(run_state: str) -> str:
    """What a stage the submission never settled reads once the run is over."""
    return "cancelled" if run_state == "cancelled" else "not run"
