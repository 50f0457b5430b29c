"""Commands on fleet runs, from any shell that reaches the fleet: `runs`, `status`, `logs`,
`cancel` and `fetch` (see executor.fleet.runs for what a run is)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from executor.cli.tables import duration, print_table
from executor.cli.workers import redis_url_of
from executor.errors import ExecutorError, UserError
from executor.terminal import shown, visible

REDIS_OPTION = click.option(
    "--redis", "redis_url", default=None,
    help="The fleet's Redis, e.g. redis://host:6379/0 (EXECUTOR_REDIS_URL).",
)  # fmt: skip
FOLLOW_POLL = 0.5  # seconds between looks at a stage not started yet


@contextmanager
def _failing() -> Iterator[None]:
    """An ExecutorError as its one-line message and exit status."""
    try:
        yield
    except ExecutorError as exc:
        click.echo(f"ERROR: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_status)


def _redis(redis_url: str | None) -> Any:
    from executor.fleet.config import REDIS_TIMEOUT, connect

    return connect(redis_url_of(redis_url), timeout=REDIS_TIMEOUT)


def _age(then: float | None) -> str:
    return "-" if then is None else duration(time.time() - then) + " ago"


@click.command()
@REDIS_OPTION
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, help="Runs shown.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for machines.")
def runs(redis_url: str | None, limit: int, as_json: bool) -> None:
    """Recent fleet runs, newest first: state, stages done, who, where and when."""
    from executor.fleet.runs import SETTLED, Runs

    with _failing():
        found = Runs(_redis(redis_url))
        rows, docs = [], []
        for info in found.recent(limit):
            stages = found.stages(info.id)
            done = sum(1 for s in stages.values() if s.state in SETTLED)
            docs.append({**info.to_dict(), "done": done, "stages": len(stages)})
            rows.append(
                [info.id, info.state, f"{done}/{len(stages)}", f"{info.user}@{info.host}",
                 info.repo, _age(info.created)]
            )  # fmt: skip
    if as_json:
        click.echo(json.dumps(docs, indent=2))
        return
    print_table(("run", "state", "done", "by", "repository", "submitted"), rows, "fleet runs")


@click.command()
@click.argument("run_id", metavar="RUN")
@REDIS_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for machines.")
def status(run_id: str, redis_url: str | None, as_json: bool) -> None:
    """Each stage of RUN: its state (waiting, queued and where in the queue, running on
    which worker, ran, restored, skipped, failed, cancelled, not run) and its duration."""
    from executor.fleet.runs import Runs

    with _failing():
        redis = _redis(redis_url)
        found = Runs(redis)
        info = found.info(run_id)
        stages = found.stages(run_id)
        rows, docs = [], {}
        for address in info.order:
            state = stages.get(address)
            if state is None:
                continue
            shown_state, where = _live(redis, state)
            end = state.ended or (time.time() if state.started else None)
            took = end - state.started if state.started and end else None
            docs[address] = {**state.__dict__, "state": shown_state, "where": where}
            error = str((state.error or {}).get("message") or "")
            rows.append([address, shown_state, where, duration(took), error])
    if as_json:
        click.echo(json.dumps({"run": info.to_dict(), "stages": docs}, indent=2))
        return
    title = f"run {info.id}: {info.state} ({info.user}@{info.host}:{info.repo})"
    print_table(("stage", "state", "where", "took", "error"), rows, title)


def _live(redis: Any, state: Any) -> tuple[str, str]:
    """A stage's state and where it is: its worker, or its place in its queue. A queued
    stage whose job RQ has started reads running (an attached run's coordinator records
    jobs as it enqueues them, not as they start)."""
    if state.state == "running":
        return state.state, str(state.worker or "?")
    if state.state != "queued" or not state.job:
        return state.state, "-"
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        job = Job.fetch(state.job, connection=redis, serializer=JSONSerializer)
        if job.get_status().value == "started":
            return "running", str(job.worker_name or "?")
        position = job.get_position()
    except Exception:  # gone from RQ meanwhile: its state says the rest
        return state.state, f"queue {state.queue}"
    if position is None:
        return state.state, f"queue {state.queue}"
    return state.state, f"queue {state.queue}, position {position + 1}"


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("stage", required=False)
@REDIS_OPTION
@click.option("-f", "--follow", is_flag=True, help="Stream the output until the stage(s) end.")
def logs(run_id: str, stage: str | None, redis_url: str | None, follow: bool) -> None:
    """The output of RUN's stages (or of STAGE): as stored once a stage has run, as it is
    printed while it runs (with -f, until it ends). Kept as long as the run's jobs (a day)."""
    from executor.fleet.runs import Runs

    with _failing():
        redis = _redis(redis_url)
        found = Runs(redis)
        info = found.info(run_id)
        order = [stage] if stage else info.order
        if stage and stage not in info.order:
            raise click.UsageError(
                f"run {run_id} has no stage '{stage}'; `executor status {run_id}` lists them"
            )
        for address in order:
            prefix = f"[{shown(address)}] " if stage is None else ""
            _stage_log(redis, found, run_id, address, follow, prefix)


def _stage_log(
    redis: Any, found: Any, run_id: str, address: str, follow: bool, prefix: str
) -> None:
    """One stage's log; with `follow`, waits for the stage's job and streams it to its end."""
    from executor.fleet.keys import events_key
    from executor.fleet.runs import LIVE

    last, job = "0-0", None
    while True:
        state = found.stage(run_id, address)
        if state.job != job:
            job, last = state.job, "0-0"  # requeued: the new job's log from its start
        if job is not None:
            block = int(FOLLOW_POLL * 1000) if follow else None
            found_events = redis.xread({events_key(job): last}, count=500, block=block)
            ended = False
            for _, events in found_events or []:
                for event_id, fields in events:
                    last = event_id
                    kind = fields.get(b"t")
                    if kind == b"log":
                        text = fields.get(b"v", b"").decode("utf-8", "replace")
                        click.echo(prefix + visible(text))
                    ended |= kind == b"end"
            if found_events and not ended:
                continue
            if ended and found.stage(run_id, address).job == job:
                return
        if not follow or state.state not in LIVE:
            return
        if job is None:
            time.sleep(FOLLOW_POLL)


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("stage", required=False)
@REDIS_OPTION
def cancel(run_id: str, stage: str | None, redis_url: str | None) -> None:
    """Cancel RUN (or only its STAGE): queued stages never start, running ones get SIGINT,
    then SIGKILL after their grace; the stages after them do not run."""
    from executor.fleet.advance import RunSteps
    from executor.fleet.cancel import cancel_run

    with _failing():
        steps = RunSteps(_redis(redis_url))
        info = steps.runs.info(run_id)
        if stage is not None and stage not in info.order:
            raise click.UsageError(f"run {run_id} has no stage '{stage}'")
        asked = cancel_run(steps, run_id, stage)
    what = f"stage '{shown(stage)}' of run {run_id}" if stage else f"run {run_id}"
    click.echo(
        f"Cancelled {what}: {len(asked)} stage(s) asked to stop"
        + (f" ({shown(', '.join(asked))})" if asked else "")
    )


@click.command()
@click.argument("run_id", metavar="RUN")
@REDIS_OPTION
@click.option("--store", "store_url", default=None,
              help="The fleet's store, as submit names it (EXECUTOR_STORE).")  # fmt: skip
def fetch(run_id: str, redis_url: str | None, store_url: str | None) -> None:
    """Land a finished run in this workspace: outputs checked out and dvc.lock written, as
    `dvc repro` would leave them. Refused if the workspace's inputs are no longer those the
    run was submitted with."""
    from pathlib import Path

    from executor.fleet.advance import RunSteps
    from executor.fleet.config import FleetConfig
    from executor.fleet.fetch import RunFetch
    from executor.pipeline import ParamsReader, build_dag, load_pipeline
    from executor.redact import redact
    from executor.settings import settings_for
    from executor.store.open import open_store
    from executor.workspace import Workspace, find_root

    with _failing():
        redis = _redis(redis_url)
        root = find_root(Path.cwd())
        settings = settings_for(root)
        info = RunSteps(redis).runs.info(run_id)
        # The store is this workspace's fleet store, never the one a run record names:
        # whoever writes to Redis could name a store of theirs.
        config = FleetConfig.from_options(redis_url, store_url, None, os.environ, settings)
        if info.store_url != config.store_url:
            raise UserError(
                f"run {run_id} was submitted to the store {redact(info.store_url)}, this "
                f"workspace's fleet store is {redact(config.store_url)}: pass --store or set "
                "EXECUTOR_STORE to the store it was submitted to"
            )
        dag = build_dag(load_pipeline(root, ParamsReader(root)))
        store = open_store(config.store_url, settings, base=root)
        try:
            with Workspace(root, settings, Path.cwd()) as ws:
                landed = RunFetch(ws, dag, RunSteps(redis, store, info.store_url), run_id).land(
                    click.echo
                )
        finally:
            store.close()
    counts: dict[str, int] = {}
    for state in landed.status.values():
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    click.echo(shown(f"Fetched run {run_id} ({landed.state}): {summary}"))
    for address, message in landed.failures.items():
        click.echo(f"ERROR: stage '{shown(address)}': {shown(message)}", err=True)
    if landed.state != "succeeded":
        sys.exit(1)


commands: list[click.Command] = [runs, status, logs, cancel, fetch]
