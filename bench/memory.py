"""Coordinator memory: peak RSS (ru_maxrss of the command's process tree, via bench.rss) of a no-op
on the largest pipeline, and of a no-op that must hash the many-file directory (state cold)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.inputs import Inputs
from bench.measure import Run, alternate
from bench.results import Row
from bench.tools import Tools

TREE_STAGE = """stages:
  count:
    cmd: find data -type f | wc -l > count.txt
    deps: [data]
    outs: [count.txt]
"""
NOTE = "no target in the issues; peak RSS in MiB, wall seconds beside it"


def _tree_repo(config: Config, tools: Tools, inputs: Inputs) -> Path:
    repo = inputs.fresh("memory-tree")
    pipelines.init_repo(repo, inputs.site_cache)
    shutil.copytree(inputs.tree(), repo / "data")
    (repo / "dvc.yaml").write_text(TREE_STAGE)
    (repo / "count.txt").write_text(f"{config.tree_files}\n")
    tools.dvc(repo, "commit", "-f", "-q")
    return repo


def _forget_state(repo: Path, inputs: Inputs) -> None:
    for suffix in ("", "-wal", "-shm"):
        (repo / ".dvc" / "tmp" / "executor" / f"state.sqlite{suffix}").unlink(missing_ok=True)
    shutil.rmtree(inputs.site_cache / "repo", ignore_errors=True)


def _row(
    config: Config, case: str, ours: Callable[[], Run], theirs: Callable[[], Run], cold: bool
) -> Row:
    seconds: dict[str, list[float]] = {"executor": [], "peer": []}

    def mib(who: str, go: Callable[[], Run]) -> float:
        done = go()
        seconds[who].append(done.seconds)
        return done.max_rss_kib / 1024

    stats = alternate(
        {"executor": lambda: mib("executor", ours), "peer": lambda: mib("peer", theirs)},
        config.slow_rounds,
        warmup=config.warmup and not cold,
    )
    wall = {who: sorted(v)[len(v) // 2] for who, v in seconds.items()}
    return Row(
        "memory",
        case,
        "dvc repro",
        stats["executor"],
        stats["peer"],
        unit="MiB",
        note=f"{NOTE}: executor {wall['executor']:.2f} s, dvc {wall['peer']:.2f} s",
    )


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    n = config.memory_stages
    committed = inputs.committed("chain", n)
    ours = pipelines.copy_repo(committed, inputs.fresh("memory-x"))
    theirs = pipelines.copy_repo(committed, inputs.fresh("memory-d"))
    rows = [
        _row(
            config,
            f"no-op, chain of {n} stages",
            lambda: tools.executor(ours, "run", rss=True),
            lambda: tools.dvc(theirs, "repro", rss=True),
            cold=False,
        )
    ]
    tree_x = _tree_repo(config, tools, inputs)
    tree_d = pipelines.copy_repo(tree_x, inputs.fresh("memory-tree-d"))

    def cold(repo: Path, go: Callable[[Path], Run]) -> Run:
        _forget_state(repo, inputs)
        return go(repo)

    rows.append(
        _row(
            config,
            f"no-op hashing a {config.tree_files:,}-file directory (state cold)",
            lambda: cold(tree_x, lambda r: tools.executor(r, "run", rss=True)),
            lambda: cold(tree_d, lambda r: tools.dvc(r, "repro", rss=True)),
            cold=True,
        )
    )
    return rows
