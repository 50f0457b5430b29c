"""Fleet mode (`executor submit`, RQ workers): jobs per second with 1 and 2 workers.

A placeholder until fleet mode exists. When it does: submit the fan pipeline of 100 stages
against a redis-server on a free loopback port with 1, then 2, `worker` processes, and compare
jobs/s with `executor run -j 1` and `-j 2` on the same machine.
"""

from __future__ import annotations

import importlib.util

from bench.config import Config
from bench.inputs import Inputs
from bench.results import Row
from bench.tools import Tools


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    built = importlib.util.find_spec("executor.commands.submit") is not None
    note = (
        "fleet mode appeared (executor.commands.submit): extend bench/fleet.py"
        if built
        else "placeholder: fleet mode (`executor submit`, RQ workers) is not built yet"
    )
    return [
        Row(
            "fleet",
            f"jobs/s, {workers} worker{'s' if workers > 1 else ''}",
            "—",
            status="placeholder",
            note=note,
        )
        for workers in (1, 2)
    ]
