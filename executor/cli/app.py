"""The `executor` command line: parse, build settings and clients, call the coordinator.

Exit codes: 0 done; 1 a stage failed; 2 bad input (dvc.yaml, params, options, config);
3 infrastructure (Docker engine, storage); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from executor import __version__
from executor.cli import pushpull, runs, workers
from executor.errors import ExecutorError, StageFailed, UserError
from executor.terminal import shown, visible

if TYPE_CHECKING:
    from executor.coordinator.runner import Runner
    from executor.coordinator.types import Backend, RunOptions, RunSummary
    from executor.fleet import FleetConfig
    from executor.fleet.attached import AttachedRun
    from executor.pipeline import Dag
    from executor.settings import Settings
    from executor.workspace import Workspace

EXIT_USAGE, EXIT_INTERRUPTED = UserError.exit_status, 130
SUBMIT_JOBS = 16  # stages `executor submit` keeps in flight unless -j says otherwise


def _error(message: str) -> None:
    click.echo(f"ERROR: {shown(message)}", err=True)


def _stop_on_signals() -> list[int]:
    """SIGTERM and SIGHUP (CI cancels, `timeout`, a closed terminal) stop a run as Ctrl-C
    does: the running containers are signalled and awaited. Returns the signals received."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
    return received


def _warn(message: str) -> None:
    click.echo(f"WARNING: {shown(message)}", err=True)


def default_targets(targets: tuple[str, ...], cwd: Path, all_pipelines: bool) -> tuple[str, ...]:
    """`dvc repro`'s default target is ./dvc.yaml; -P means every stage."""
    if targets or all_pipelines:
        return targets
    if not (cwd / "dvc.yaml").is_file():
        raise UserError(f"no dvc.yaml in {cwd}: name the stages to run, or use -P/--all-pipelines")
    return ("dvc.yaml",)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="executor")
def main() -> None:
    """Run DVC pipelines in containers, here or on a fleet."""


def _run_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `run` and `submit` share (those of `dvc repro` that executor has)."""
    for decorator in reversed(
        [
            click.argument("targets", nargs=-1),
            click.option("--dry", is_flag=True,
                         help="Print what would run or be restored, run nothing."),
            click.option("-f", "--force", is_flag=True, help="Run even if cached or unchanged."),
            click.option("--no-commit", is_flag=True,
                         help="Run, but store no outputs and no run-cache entry."),
            click.option("--allow-missing", is_flag=True,
                         help="Skip stages whose only change is missing outputs."),
            click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                         help="Stages run at once."),
            click.option("--downstream", is_flag=True,
                         help="Run the targets and the stages after them."),
            click.option("-P", "--all-pipelines", is_flag=True,
                         help="Run every dvc.yaml of the repository."),
        ]
    ):  # fmt: skip
        command = decorator(command)
    return command


@main.command()
@_run_options
def run(**options: Any) -> None:
    """Reproduce the pipeline like `dvc repro`, each stage in a container.

    Without TARGETS: the stages of ./dvc.yaml and what they need, as with `dvc repro`
    (-P for every dvc.yaml of the repository).
    """
    _reproduce(None, **options)


@main.command()
@_run_options
@click.option("--redis", "redis_url", default=None,
              help="The fleet's Redis, e.g. redis://host:6379/0 (EXECUTOR_REDIS_URL).")  # fmt: skip
@click.option("--store", "store_url", default=None,
              help="The fleet's store, as its workers serve it (EXECUTOR_STORE).")  # fmt: skip
@click.option("--queue", default=None, help="The queue to submit to (EXECUTOR_QUEUE).")
@click.option("-d", "--detach", is_flag=True,
              help="Record the run on the fleet, print its id and return; `executor fetch RUN` "
              "lands it.")  # fmt: skip
def submit(
    redis_url: str | None, store_url: str | None, queue: str | None, detach: bool, **options: Any
) -> None:
    """Reproduce the pipeline like `dvc repro`, each stage that must run on the fleet.

    Planning, the run-cache lookup and dvc.lock happen here; a stage that must run is sent
    to a worker with its inputs, and its outputs come back into this repository. A stage
    another submission already ran (same inputs, image and environment) is checked out,
    not run.
    """
    from executor.fleet import FleetConfig

    def fleet(settings: Settings) -> FleetConfig:
        return FleetConfig.from_options(redis_url, store_url, queue, os.environ, settings)

    if detach and options["dry"]:
        _error("--detach and --dry do not go together: --dry submits nothing")
        sys.exit(EXIT_USAGE)
    _reproduce(fleet, detach=detach, **options)


def _reproduce(
    fleet: Callable[[Settings], FleetConfig] | None,
    targets: tuple[str, ...],
    dry: bool,
    force: bool,
    no_commit: bool,
    allow_missing: bool,
    jobs: int | None,
    downstream: bool,
    all_pipelines: bool,
    detach: bool = False,
) -> None:
    """`run` (fleet None: stages in containers here) or `submit` (stages on the fleet)."""
    from executor.coordinator.runner import Runner
    from executor.coordinator.types import RunOptions
    from executor.pipeline import ParamsReader, build_dag, load_pipeline
    from executor.settings import settings_for
    from executor.workspace import Workspace, check_targets, find_root, target_from_cwd

    stopped_by = _stop_on_signals()
    try:
        cwd = Path.cwd()
        root = find_root(cwd)
        settings = settings_for(root)
        config = fleet(settings) if fleet is not None else None
        params = ParamsReader(root)  # each params file parsed once for loading and locking
        dag = build_dag(load_pipeline(root, params))
        wanted = [
            target_from_cwd(t, root, cwd) for t in default_targets(targets, cwd, all_pipelines)
        ]
        kept = check_targets(wanted, root, dag.stages.values())
        if (wanted and not kept) or not dag.stages:  # dvc.yaml files without stages
            click.echo("Data and pipelines are up to date.")
            return
        options = RunOptions(
            targets=tuple(kept),
            downstream=downstream,
            dry=dry,
            force=force,
            no_commit=no_commit,
            allow_missing=allow_missing,
            detach=detach,
            # On a fleet, every stage whose inputs are ready can be in flight at once.
            jobs=jobs or (settings.jobs if fleet is None else max(settings.jobs, SUBMIT_JOBS)),
        )
        with Workspace(root, settings, cwd) as ws:
            record = _attached_run(config, root, dag, options)
            backend = _backend(ws, config, options.jobs, record)
            runner = Runner(ws, dag, options, click.echo, backend, params, _warn)
            summary = _plan(runner, record)
    except ExecutorError as exc:
        _error(str(exc))
        sys.exit(exc.exit_status)
    except RecursionError:  # the loaders name the file; this is the net below them
        _error("an input file (dvc.yaml, dvc.lock, a params file) is nested too deeply; flatten it")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(_interrupted_status(stopped_by))
    _conclude(summary, stopped_by, dry)


def _detached(runner: Runner) -> RunSummary:
    """submit --detach: settle here what can be, record the run, print its id."""
    from executor.coordinator.schedule import run_plan
    from executor.fleet.detach import DetachedRun

    detached = DetachedRun(runner)
    runner.deferral = detached
    summary = run_plan(runner)
    if summary.ok:
        run_id = detached.record(summary)
        click.echo(f"Submitted run {run_id}: `executor status {run_id}`, `executor fetch {run_id}`")
        click.echo(run_id)
    return summary


def _attached_run(
    config: FleetConfig | None, root: Path, dag: Dag, options: RunOptions
) -> AttachedRun | None:
    """An attached submission's record in the fleet's Redis (see fleet.attached)."""
    if config is None or options.dry or options.detach:
        return None
    from executor.fleet.attached import AttachedRun

    order = [s.address for s in dag.order(options.targets, options.downstream)]
    # Its id on a terminal only: scripts find it with `executor runs`, and errors stay one line.
    announce = partial(click.echo, err=True) if sys.stderr.isatty() else _quiet
    return AttachedRun(str(root), config.store_url, order, announce)


def _quiet(text: str) -> None:
    """Say nothing."""


def _plan(runner: Runner, record: AttachedRun | None) -> RunSummary:
    """Run the runner's plan: detached, attached to a fleet run, or here."""
    from executor.coordinator.schedule import run_plan

    if runner.options.detach:
        return _detached(runner)
    if record is None:
        return run_plan(runner)
    runner.progress = record.progress
    summary = runner.summary
    try:
        summary = run_plan(runner)
    finally:
        record.finish(summary)
    return summary


def _backend(
    ws: Workspace, config: FleetConfig | None, jobs: int, record: AttachedRun | None = None
) -> Callable[[], Backend]:
    """The runner's backend: containers on this host's Docker engine, or the fleet."""
    if config is None:
        from executor.coordinator.types import load_backend

        return partial(load_backend, ws, os.environ, jobs)
    from executor.fleet import FleetBackend

    return partial(FleetBackend, ws, config, jobs, record)


def _interrupted_status(stopped_by: list[int]) -> int:
    """The exit status of a run stopped by Ctrl-C or by one of `_stop_on_signals`."""
    return 128 + stopped_by[-1] if stopped_by else EXIT_INTERRUPTED


def _conclude(summary: RunSummary, stopped_by: list[int], dry: bool) -> None:
    """Say how the run ended; exit with its status unless every stage succeeded."""
    if summary.interrupted:
        _error("interrupted; stages that had finished are recorded, the rest were stopped")
        sys.exit(_interrupted_status(stopped_by))
    for failure in summary.errors.values():
        _error(str(failure))
        if isinstance(failure, StageFailed) and failure.log_tail:
            click.echo("  last lines of its output:", err=True)
            for line in failure.log_tail.rstrip("\n").splitlines():
                click.echo(f"  | {visible(line)}", err=True)
    if summary.errors:
        sys.exit(max(e.exit_status for e in summary.errors.values()))
    if not dry and all(s == "skipped" for s in summary.status.values()):
        click.echo("Data and pipelines are up to date.")


for _command in [*pushpull.commands, *workers.commands, *runs.commands]:
    main.add_command(_command)
