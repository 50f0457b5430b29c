"""No-op run: `executor run` against `dvc repro` on a pipeline where nothing changed."""

from __future__ import annotations

from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.inputs import Inputs
from bench.measure import Run, alternate
from bench.profiling import profile_executor
from bench.results import Row, Target
from bench.tools import Tools

UP_TO_DATE = "Data and pipelines are up to date."
TARGET = Target("≤ 1/3 of dvc repro's wall time (20 and 100 stages)", "ratio", 1 / 3)
LIGHT = Target("nothing heavy (docker, boto3) imported on that path", "count", key="heavy_imports")


def _noop(done: Run, who: str, repo: Path) -> float:
    if UP_TO_DATE not in done.stdout:
        raise RuntimeError(f"{who} in {repo} was not a no-op:\n{done.stdout[-1500:]}")
    return done.seconds


def _one(config: Config, tools: Tools, inputs: Inputs, shape: str, n: int) -> Row:
    committed = inputs.committed(shape, n)
    ours = pipelines.copy_repo(committed, inputs.fresh(f"noop-x-{shape}-{n}"))
    theirs = pipelines.copy_repo(committed, inputs.fresh(f"noop-d-{shape}-{n}"))
    cases = {
        "executor": lambda: _noop(tools.executor(ours, "run"), "executor run", ours),
        "peer": lambda: _noop(tools.dvc(theirs, "repro"), "dvc repro", theirs),
    }
    big = n > 100
    # Always a warm-up: it fills both state caches (copying moved every inode).
    stats = alternate(cases, max(2, config.rounds - 2) if big else config.rounds, warmup=True)
    row = Row(
        "noop",
        f"{shape}, {n} stages",
        "dvc repro",
        stats["executor"],
        stats["peer"],
        target=None if big else TARGET,
        plot=(f"no-op, {shape}", n),
        note="the issue sets the target for 20 and 100 stages" if big else "",
    )
    if config.profile_misses and row.met is False:
        row.profile = profile_executor(tools, ours, ("run",)).text()
    return row


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    rows = [_one(config, tools, inputs, s, n) for n in config.noop_sizes for s in config.shapes]
    n = max(s for s in config.noop_sizes if s <= 100)
    repo = pipelines.copy_repo(inputs.committed("chain", n), inputs.fresh("noop-imports"))
    tools.executor(repo, "run")
    heavy = profile_executor(tools, repo, ("run",)).heavy
    rows.append(
        Row(
            "noop",
            f"imports on the no-op path (chain, {n} stages)",
            "—",
            target=LIGHT,
            extra={"heavy_imports": float(len(heavy))},
            note=f"heavy modules imported: {', '.join(heavy) or 'none'}",
        )
    )
    return rows
