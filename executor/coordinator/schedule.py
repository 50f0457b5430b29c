"""The scheduling loop of `executor run`: stages start as their upstream stages finish.

Up to `jobs` stages run at once on a thread pool; a failure stops new starts (running ones
finish) and marks downstream stages "not run"; Ctrl-C cancels every running container and
waits for them, so nothing keeps running after the command returns. Containers of the stages
next in line are started early (`warm_ahead`) and removed unused if those stages do not run.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from executor.coordinator.runner import Runner
from executor.coordinator.types import LOCK_INTERVAL, Launch, RunSummary
from executor.errors import ExecutorError, StageCancelled
from executor.jobresult import JobResult
from executor.pipeline.model import Stage


def plan_waits(runner: Runner, plan: list[Stage]) -> dict[str, list[str]]:
    """For each stage, the stages of the plan that must finish before it is decided.

    A stage waits for the producers of its deps. DVC cuts a frozen stage's upstream edges, so
    its plan may visit a frozen stage before the stages producing what it reads; it records
    the frozen stage's deps as they are at that point. Such a producer then waits for the
    frozen stage instead: every pair is ordered as DVC's plan orders it.
    """
    index = {stage.address: i for i, stage in enumerate(plan)}
    waits: dict[str, list[str]] = {stage.address: [] for stage in plan}
    for stage in plan:
        for up in runner.dag.upstream(stage):
            if up.address not in index:
                continue
            if index[up.address] < index[stage.address]:
                waits[stage.address].append(up.address)
            else:
                waits[up.address].append(stage.address)
    return waits


def run_plan(runner: Runner) -> RunSummary:
    """Run the runner's plan to its summary: decide, queue and start stages as their
    upstream stages finish, until every stage is settled or nothing more can start."""
    return _Schedule(runner).run()


class _Schedule:
    """One run's scheduling loop and the state it shares: the stages still to decide, those
    queued for a slot, those running, and those finished."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.pending = runner.dag.order(runner.options.targets, runner.options.downstream)
        runner.queue.set_plan(self.pending)
        self.waits = plan_waits(runner, self.pending)
        self.jobs = max(1, runner.options.jobs)
        self.finished: set[str] = set()  # succeeded in any way
        self.unknown: set[str] = set()  # dry run: would run, so downstream hashes are unknown
        self.queued: deque[Launch] = deque()  # decided to run, waiting for a free slot
        self.running: dict[Future[JobResult], Stage] = {}
        self.pool = ThreadPoolExecutor(max_workers=self.jobs)

    def run(self) -> RunSummary:
        runner = self.runner
        try:
            runner.checks.check(self.pending)
            runner.checks.verify_data_sources(self.pending)
            while self.pending or self.queued or self.running:
                if runner.progress is not None:
                    runner.progress(runner.summary)
                self._decide_ready()
                self._start_queued()
                warm_ahead(
                    runner, self.queued, self.pending, self.waits, self.finished, self.running
                )
                if not self.running:
                    if self._over():
                        break
                    continue
                self._collect_finished()
            for stage in [*self.pending, *(launch.stage for launch in self.queued)]:
                runner.summary.status.setdefault(stage.address, "not run")
        except KeyboardInterrupt:
            interrupt(runner, self.running)
        except BaseException:
            runner.cancel.set()  # something unexpected: stop the containers, then let it surface
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            try:
                runner.close()
            finally:
                runner.queue.flush(final=True)
        return runner.summary

    def _start_queued(self) -> None:
        runner = self.runner
        while self.queued and len(self.running) < self.jobs and not runner.summary.errors:
            launch = self.queued.popleft()
            try:
                self.running[runner.start(launch, self.pool)] = launch.stage
            except (ExecutorError, OSError) as exc:  # e.g. no Docker engine
                runner.fail(launch.stage, exc)

    def _decide_ready(self) -> None:
        """Decide the pending stages whose upstream stages are settled, in plan order."""
        for stage in list(self.pending):
            # With -j 1, as in dvc repro, a stage is decided only once the one before it
            # has finished: its messages keep their order, and a stage that changes an
            # undeclared input of the next is seen. With more, stages that need no slot
            # (skipped, restored) are settled while every slot is busy.
            if self.runner.summary.errors or (self.jobs == 1 and (self.queued or self.running)):
                return
            ups = self.waits[stage.address]
            if self._settled_by_upstream(stage, ups):
                continue
            if not all(u in self.finished for u in ups):
                continue
            self.pending.remove(stage)
            if not self._decide(stage):
                return

    def _settled_by_upstream(self, stage: Stage, ups: list[str]) -> bool:
        """Settle a stage undecided if an upstream stage failed, was not run, or would run
        (--dry); whether it was."""
        summary = self.runner.summary
        if not (
            any(u in summary.errors or u in self.unknown for u in ups)
            or any(summary.status.get(u) == "not run" for u in ups)
        ):
            return False
        deferral = self.runner.deferral
        if deferral is not None and any(u in self.unknown for u in ups):
            if not all(u in self.unknown or u in self.finished for u in ups):
                return False  # decided once every upstream stage is settled or deferred
            self.pending.remove(stage)
            self.unknown.add(stage.address)
            deferral.wait(stage, [u for u in ups if u in self.unknown])
            summary.status[stage.address] = "waiting"
            return True
        self.pending.remove(stage)
        if any(u in self.unknown for u in ups):
            self.unknown.add(stage.address)
            self.runner.say(f"Stage '{self.runner.shown(stage)}' would run after its upstream")
            summary.status[stage.address] = "would run"
        else:
            summary.status[stage.address] = "not run"
        return True

    def _decide(self, stage: Stage) -> bool:
        """Decide a stage whose upstream stages have finished: settled here (skipped,
        restored), said (--dry), or queued to run; False if deciding it failed."""
        runner = self.runner
        try:
            launch = runner.act(stage)
        except (ExecutorError, OSError) as exc:
            runner.fail(stage, exc)
            return False
        if launch is None:
            self.finished.add(stage.address)
            runner.queue.flush()
        elif runner.deferral is not None:
            runner.deferral.defer(launch)
            self.unknown.add(stage.address)
            runner.summary.status[stage.address] = "queued"
        elif runner.options.dry:
            runner.start(launch, self.pool)  # says what would run
            self.unknown.add(stage.address)
            runner.summary.status[stage.address] = "would run"
        else:
            self.queued.append(launch)
            self._start_queued()
        return True

    def _over(self) -> bool:
        """With no stage running: whether the loop is over (a failure, nothing left, or only
        stages whose upstream stages can never finish)."""
        if self.runner.summary.errors or not (self.pending or self.queued):
            return True
        return not self.queued and not any(  # nothing can make progress: only blocked stages
            all(u in self.finished for u in self.waits[s.address]) for s in self.pending
        )

    def _collect_finished(self) -> None:
        """Finish the stages that ended, waiting for one at most LOCK_INTERVAL."""
        # Wake at least every LOCK_INTERVAL, so settled entries reach dvc.lock soon while
        # a long stage runs, yet dvc.lock is not rewritten after every one of many stages.
        done, _ = wait(self.running, timeout=LOCK_INTERVAL, return_when=FIRST_COMPLETED)
        for future in done:
            stage = self.running.pop(future)
            self.runner.finish(stage, future)
            if stage.address not in self.runner.summary.errors:
                self.finished.add(stage.address)
        self.runner.queue.flush()


def warm_ahead(
    runner: Runner,
    queued: deque[Launch],
    pending: list[Stage],
    waits: dict[str, list[str]],
    finished: set[str],
    running: dict[Future[JobResult], Stage],
) -> None:
    """Start the containers of the stages next in line while others run (up to `jobs` of them).

    First those decided to run and waiting for a slot, then those whose upstream stages have
    each finished, are running or are themselves next in line. Starting a container is most of
    a trivial stage's time; this way it overlaps the stages before it, and a chain pays it
    once, not once per stage. A stage that turns out not to run loses its container unused.
    """
    if not running or runner.summary.errors or runner.cancel.is_set():
        return
    jobs = max(1, runner.options.jobs)
    busy = {stage.address for stage in running.values()} | runner.warm
    for launch in queued:
        if len(runner.warm) >= jobs:
            return
        if launch.stage.address not in runner.warm:
            runner.prestart(launch.stage)
        busy.add(launch.stage.address)
    for stage in pending:
        if len(runner.warm) >= jobs:
            return
        if stage.address in runner.warm:
            continue
        if all(u in finished or u in busy for u in waits[stage.address]) and runner.prestart(stage):
            busy.add(stage.address)


def interrupt(runner: Runner, running: dict[Future[JobResult], Stage]) -> None:
    """Ctrl-C: forward SIGINT to every running container and wait for them to exit."""
    runner.summary.interrupted = True
    runner.cancel.set()
    if running:
        runner.say("Interrupted: stopping the running stages...")
    while running:
        try:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            continue  # already cancelling; the sandbox escalates to SIGKILL after its grace
        for future in done:
            stage = running.pop(future)
            try:
                result = future.result()
            except StageCancelled:
                runner.summary.status[stage.address] = "cancelled"
            except (ExecutorError, OSError) as exc:  # OSError: e.g. a full disk on an output
                runner.fail(stage, exc)
            else:
                runner.record_result(stage, result.entry)
                runner.summary.status[stage.address] = "ran"
