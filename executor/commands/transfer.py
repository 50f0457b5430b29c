"""`executor push` and `executor pull` (placeholder until the object-store work lands)."""

from __future__ import annotations

import click

commands: list[click.Command] = []
