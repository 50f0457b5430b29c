"""`executor workers`: the fleet's live workers, what each runs and how it is doing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from executor.cli.tables import duration, print_table
from executor.errors import ExecutorError, UserError
from executor.terminal import shown

COLUMNS = ("worker", "host", "queues", "state", "stage", "running", "heartbeat", "cache")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def redis_url_of(given: str | None) -> str:
    """--redis, else EXECUTOR_REDIS_URL, else `redis_url:` of the repository's .executor.yaml."""
    from executor.settings import settings_for
    from executor.workspace import find_root

    if given or os.environ.get("EXECUTOR_REDIS_URL"):
        return given or os.environ["EXECUTOR_REDIS_URL"]
    try:
        url = settings_for(find_root(Path.cwd())).raw.get("redis_url")
    except UserError:
        url = None  # outside a repository: no .executor.yaml to read
    if not url:
        raise UserError("no fleet named: pass --redis redis://HOST:PORT or set EXECUTOR_REDIS_URL")
    return str(url)


@click.command()
@click.option("--redis", "redis_url", default=None,
              help="The fleet's Redis, e.g. redis://host:6379/0 (EXECUTOR_REDIS_URL).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for machines.")
def workers(redis_url: str | None, as_json: bool) -> None:
    """The fleet's live workers: host, queues, state, the stage each runs and since when,
    the age of its heartbeat and its local cache use."""
    from executor.fleet.config import REDIS_TIMEOUT, connect
    from executor.fleet.workers import list_workers

    try:
        views = list_workers(connect(redis_url_of(redis_url), timeout=REDIS_TIMEOUT))
    except ExecutorError as exc:
        click.echo(f"ERROR: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_status)
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in views], indent=2))
        return
    rows = [
        [
            v.name,
            v.host,
            ",".join(v.queues),
            v.state,
            v.stage or "-",
            duration(v.running_for),
            duration(v.heartbeat_age) + " ago" if v.heartbeat_age is not None else "-",
            f"{_size(v.cache_bytes)} / {_size(v.cache_limit)}",
        ]
        for v in views
    ]
    print_table(COLUMNS, rows, f"{len(rows)} worker(s)")


commands: list[click.Command] = [workers]
