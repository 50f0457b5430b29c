"""Run-cache hits: restore after deleting every output (dvc.lock kept), and all-hits
resolution (outputs and dvc.lock deleted, cache kept). Each tool restores from the run-cache
its own first run wrote (executor's entries carry the image digest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.firstrun import check_outputs
from bench.inputs import Inputs
from bench.measure import Run, alternate
from bench.profiling import profile_executor
from bench.results import Row, Target
from bench.tools import Tools

RESTORE = Target("≤ 1/20 of dvc repro's time (100 stages)", "ratio", 1 / 20)
SHAPE = "chain"  # downstream keys come from upstream results: the harder case


def _remove_outputs(repo: Path) -> None:
    pipelines.remove_outputs(repo)


def _remove_outputs_and_lock(repo: Path) -> None:
    pipelines.remove_outputs(repo)
    (repo / "dvc.lock").unlink()


def _measure(
    config: Config, tools: Tools, inputs: Inputs, reset: Callable[[Path], None]
) -> tuple[Row, Path]:
    n = config.restore_size
    ours = pipelines.copy_repo(inputs.ran("executor", SHAPE, n), inputs.fresh("hits-x"))
    theirs = pipelines.copy_repo(inputs.ran("dvc", SHAPE, n), inputs.fresh("hits-d"))

    def run(repo: Path, go: Callable[[Path], Run]) -> float:
        reset(repo)
        done = go(repo)
        if "Running stage" in done.stdout:
            raise RuntimeError(f"{repo}: a stage ran instead of being restored:\n{done.stdout}")
        check_outputs(repo, SHAPE, n)
        return done.seconds

    cases = {
        "executor": lambda: run(ours, lambda r: tools.executor(r, "run")),
        "peer": lambda: run(theirs, lambda r: tools.dvc(r, "repro")),
    }
    stats = alternate(cases, config.slow_rounds, config.warmup)
    row = Row("", f"{SHAPE}, {n} stages", "dvc repro", stats["executor"], stats["peer"])
    return row, ours


def restore(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    row, ours = _measure(config, tools, inputs, _remove_outputs)
    row.scenario, row.target = "restore", RESTORE
    row.note = "every output deleted, dvc.lock kept; restored from the run-cache, nothing runs"
    if config.profile_misses and row.met is False:
        prof = profile_executor(tools, ours, ("run",), lambda: _remove_outputs(ours))
        row.profile = prof.text()
    return [row]


def all_hits(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    row, _ = _measure(config, tools, inputs, _remove_outputs_and_lock)
    row.scenario = "allhits"
    row.note = (
        "outputs and dvc.lock deleted, cache kept: every key resolved from upstream hashes; "
        "no target in the issues (the design promises milliseconds for the resolution itself)"
    )
    return [row]
