"""`executor workers`: the fleet's live workers, what each runs and how it is doing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from executor.errors import ExecutorError, UserError
from executor.terminal import shown

COLUMNS = ("worker", "host", "queues", "state", "stage", "running", "heartbeat", "cache")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


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
            _duration(v.running_for),
            _duration(v.heartbeat_age) + " ago" if v.heartbeat_age is not None else "-",
            f"{_size(v.cache_bytes)} / {_size(v.cache_limit)}",
        ]
        for v in views
    ]
    # Names a Redis writer chose: no control character, nor a tab or newline that would
    # forge a column or a row.
    rows = [[shown(cell).replace("\t", "\\t").replace("\n", "\\n") for cell in row] for row in rows]
    if not sys.stdout.isatty():
        click.echo("\t".join(COLUMNS))
        for row in rows:
            click.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*COLUMNS, title=f"{len(rows)} worker(s)")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # never read as rich markup
    Console().print(table)


commands: list[click.Command] = [workers]
