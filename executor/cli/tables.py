"""Tables of the fleet commands: rich on a terminal, tab-separated lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from executor.terminal import shown


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def print_table(columns: Sequence[str], rows: list[list[str]], title: str) -> None:
    """Cells are names a Redis writer chose: no control character, nor a tab or newline
    that would forge a column or a row, and never read as rich markup."""
    rows = [[shown(cell).replace("\t", "\\t").replace("\n", "\\n") for cell in row] for row in rows]
    if not sys.stdout.isatty():
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, title=Text(shown(title)))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console().print(table)
