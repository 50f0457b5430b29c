"""`executor push` and `executor pull`: a repository's outputs to and from a store, like
`dvc push`/`dvc pull` (same objects, same layout); heavy imports stay inside the commands."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import click

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from executor.errors import TransferIncomplete, UnsavedChanges
    from executor.store.base import ObjectStore
    from executor.store.hints import DirHints
    from executor.store.routes import Route
    from executor.store.transfer import Report
    from executor.workspace import Workspace


class _Bars:
    """transfer.Progress drawn with rich on stderr; nothing (and rich not even imported)
    when stderr is not a terminal."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )

    def __enter__(self) -> _Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, what: str, total: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(what, total=total)

    def advance(self, count: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)


def _transfer(
    action: Literal["push", "pull"],
    targets: tuple[str, ...],
    where: _Where,
    run_cache: bool,
    jobs: int | None,
    force: bool = False,
) -> Report:
    """Move the targets' outputs along each route (store) they take; the reports summed.
    A route whose objects did not all move does not stop the next one."""
    import dataclasses
    from contextlib import closing

    from executor.errors import TransferIncomplete, UnsavedChanges
    from executor.settings import settings_for
    from executor.store import transfer
    from executor.store.hints import DirHints
    from executor.store.routes import routes
    from executor.store.tracked import tracked_outputs
    from executor.workspace import Workspace, find_root

    cwd = Path.cwd()
    root = find_root(cwd)
    settings = settings_for(root)
    if jobs is not None:
        settings = dataclasses.replace(settings, transfer_workers=jobs)
    outputs = tracked_outputs(root, targets, cwd)
    chosen = routes(
        action,
        outputs,
        settings,
        root,
        cwd,
        store_url=where.store_url,
        remote=where.remote,
        run_cache=run_cache,
    )
    total = transfer.Report()
    incomplete: list[TransferIncomplete] = []
    unsaved: list[UnsavedChanges] = []
    with Workspace(root, settings, cwd) as ws, _Bars() as bars:
        for route in chosen:
            store = route.open()
            hints = DirHints.for_store(root, store.url)
            try:
                with closing(store):
                    report = _move(action, ws, store, route, bars, hints, force)
            except TransferIncomplete as exc:
                incomplete.append(exc)
                continue
            except UnsavedChanges as exc:  # the route's other outputs were checked out
                unsaved.append(exc)
                continue
            total.add(report)
    _raise_shortfalls(action, [r.name for r in chosen], incomplete, unsaved)
    return total


def _move(
    action: Literal["push", "pull"],
    ws: Workspace,
    store: ObjectStore,
    route: Route,
    bars: _Bars,
    hints: DirHints,
    force: bool,
) -> Report:
    """Push or pull one route's outputs between the repository's cache and its store."""
    from executor.store import transfer
    from executor.store.checkout import hashes_of

    workers = ws.settings.transfer_workers
    if action == "push":
        return transfer.push(
            ws.store,
            store,
            route.outputs,
            run_cache=route.run_cache,
            jobs=workers,
            progress=bars,
            hints=hints,
        )
    return transfer.pull(
        ws.store,
        store,
        ws.root,
        route.outputs,
        run_cache=route.run_cache,
        jobs=workers,
        progress=bars,
        hash_many=hashes_of(ws.hasher),
        hints=hints,
        force=force,
        remember=ws.hasher.remember,
    )


def _raise_shortfalls(
    action: Literal["push", "pull"],
    names: list[str],
    incomplete: list[TransferIncomplete],
    unsaved: list[UnsavedChanges],
) -> None:
    """One error for what the routes (named `names`) left undone: objects that did not move
    first, else workspace changes kept; nothing if every route finished."""
    from executor.errors import TransferIncomplete, UnsavedChanges

    kept = [p for exc in incomplete for p in exc.kept] + [p for u in unsaved for p in u.paths]
    if incomplete:
        failed = {oid: why for exc in incomplete for oid, why in exc.failed.items()}
        what = incomplete[0].action if len(incomplete) == 1 else f"{action} ({', '.join(names)})"
        raise TransferIncomplete(what, failed, kept)
    if unsaved:
        raise UnsavedChanges(kept, [o for u in unsaved for o in u.outputs])


@dataclass(frozen=True)
class _Where:
    """--store URL or -r REMOTE, as given (at most one)."""

    store_url: str | None = None
    remote: str | None = None


def _main(
    action: Literal["push", "pull"],
    targets: tuple[str, ...],
    where: _Where,
    run_cache: bool,
    jobs: int | None,
    force: bool = False,
) -> None:
    from executor.errors import ExecutorError
    from executor.terminal import shown

    try:
        report = _transfer(action, targets, where, run_cache, jobs, force)
    except ExecutorError as exc:
        click.echo(f"ERROR: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        click.echo(f"ERROR: {action} interrupted; run it again to finish", err=True)
        sys.exit(130)
    runs = f", {report.runs} run-cache entries" if report.runs else ""
    if action == "push" and (report.moved or report.runs):
        click.echo(f"{report.moved} objects pushed{runs}")
    elif action == "pull" and (report.moved or report.checked_out or report.runs):
        click.echo(f"{report.moved} objects fetched, {report.checked_out} files checked out{runs}")
    else:
        click.echo("Everything is up to date.")


_TARGETS = click.argument("targets", nargs=-1)
_STORE = click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="s3://bucket/prefix or a folder. Default: EXECUTOR_STORE, else DVC's default remote.",
)
_REMOTE = click.option(
    "-r", "--remote", metavar="NAME", help="A DVC remote of the repository (dvc remote list)."
)
_RUN_CACHE = click.option("--run-cache", is_flag=True, help="Also move run-cache entries.")
_JOBS = click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parallel transfers."
)


def _where(store_url: str | None, remote: str | None) -> _Where:
    if store_url and remote:
        raise click.UsageError("give --store or -r/--remote, not both")
    return _Where(store_url, remote)


@click.command()
@_TARGETS
@_STORE
@_REMOTE
@_RUN_CACHE
@_JOBS
def push(
    targets: tuple[str, ...],
    store_url: str | None,
    remote: str | None,
    run_cache: bool,
    jobs: int | None,
) -> None:
    """Upload the objects of the outputs in dvc.lock (of TARGETS: stages, dvc files or
    outputs) that the store lacks, like `dvc push`."""
    _main("push", targets, _where(store_url, remote), run_cache, jobs)


@click.command()
@_TARGETS
@_STORE
@_REMOTE
@_RUN_CACHE
@_JOBS
@click.option("-f", "--force", is_flag=True, help="Discard workspace changes that are in no cache.")
def pull(
    targets: tuple[str, ...],
    store_url: str | None,
    remote: str | None,
    run_cache: bool,
    jobs: int | None,
    force: bool,
) -> None:
    """Download the objects of the outputs in dvc.lock (of TARGETS) into .dvc/cache, verified,
    and check the outputs out, like `dvc pull`: a changed file whose content is in no cache
    is kept, and the pull fails, unless --force."""
    _main("pull", targets, _where(store_url, remote), run_cache, jobs, force)


commands: list[click.Command] = [push, pull]
