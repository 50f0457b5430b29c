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
    pending = runner.dag.order(runner.options.targets, runner.options.downstream)
    runner.queue.set_plan(pending)
    waits = plan_waits(runner, pending)
    jobs = max(1, runner.options.jobs)
    finished: set[str] = set()  # succeeded in any way
    unknown: set[str] = set()  # dry run: would run, so downstream hashes are unknown
    queued: deque[Launch] = deque()  # decided to run, waiting for a free slot
    running: dict[Future[JobResult], Stage] = {}
    pool = ThreadPoolExecutor(max_workers=jobs)

    def start_queued() -> None:
        while queued and len(running) < jobs and not runner.summary.errors:
            launch = queued.popleft()
            try:
                running[runner.start(launch, pool)] = launch.stage
            except (ExecutorError, OSError) as exc:  # e.g. no Docker engine
                runner.fail(launch.stage, exc)

    try:
        runner.checks.check(pending)
        runner.checks.verify_data_sources(pending)
        while pending or queued or running:
            for stage in list(pending):
                # With -j 1, as in dvc repro, a stage is decided only once the one before it
                # has finished: its messages keep their order, and a stage that changes an
                # undeclared input of the next is seen. With more, stages that need no slot
                # (skipped, restored) are settled while every slot is busy.
                if runner.summary.errors or (jobs == 1 and (queued or running)):
                    break
                ups = waits[stage.address]
                if any(u in runner.summary.errors or u in unknown for u in ups) or any(
                    runner.summary.status.get(u) == "not run" for u in ups
                ):
                    pending.remove(stage)
                    if any(u in unknown for u in ups):
                        unknown.add(stage.address)
                        runner.say(f"Stage '{runner.shown(stage)}' would run after its upstream")
                        runner.summary.status[stage.address] = "would run"
                    else:
                        runner.summary.status[stage.address] = "not run"
                    continue
                if not all(u in finished for u in ups):
                    continue
                pending.remove(stage)
                try:
                    launch = runner.act(stage)
                except (ExecutorError, OSError) as exc:
                    runner.fail(stage, exc)
                    break
                if launch is None:
                    finished.add(stage.address)
                    runner.queue.flush()
                elif runner.options.dry:
                    runner.start(launch, pool)  # says what would run
                    unknown.add(stage.address)
                    runner.summary.status[stage.address] = "would run"
                else:
                    queued.append(launch)
                    start_queued()
            start_queued()
            warm_ahead(runner, queued, pending, waits, finished, running)
            if not running:
                if runner.summary.errors or not (pending or queued):
                    break
                if not queued and not any(  # nothing can make progress: only blocked stages
                    all(u in finished for u in waits[s.address]) for s in pending
                ):
                    break
                continue
            # Wake at least every LOCK_INTERVAL, so settled entries reach dvc.lock soon while
            # a long stage runs, yet dvc.lock is not rewritten after every one of many stages.
            done, _ = wait(running, timeout=LOCK_INTERVAL, return_when=FIRST_COMPLETED)
            for future in done:
                stage = running.pop(future)
                runner.finish(stage, future)
                if stage.address not in runner.summary.errors:
                    finished.add(stage.address)
            runner.queue.flush()
        for stage in [*pending, *(launch.stage for launch in queued)]:
            runner.summary.status.setdefault(stage.address, "not run")
    except KeyboardInterrupt:
        interrupt(runner, running)
    except BaseException:
        runner.cancel.set()  # something unexpected: stop the containers, then let it surface
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        try:
            runner.close()
        finally:
            runner.queue.flush(final=True)
    return runner.summary


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
