"""First full run: every stage in its own container (`executor run -j N`) against `dvc repro`
running them as plain processes, on fresh copies of a never-run pipeline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.inputs import Inputs
from bench.measure import alternate
from bench.profiling import profile_threaded
from bench.results import Row, Target
from bench.tools import Tools

TARGET = Target("no slower than dvc repro (100 stages)", "ratio", 1.0)
CHAIN_NOTE = (
    "a chain runs one stage at a time; the containers of the next -j stages start meanwhile"
)


def check_outputs(repo: Path, shape: str, n: int) -> None:
    """Every stage's output is there with the content its command writes."""
    for i in range(n):
        got = (repo / pipelines.out_path(i)).read_text()
        if got != pipelines.expected_output(shape, i):
            raise RuntimeError(f"{repo}: {pipelines.out_path(i)} is {got!r}")


def _one(config: Config, tools: Tools, inputs: Inputs, shape: str, n: int, warmup: bool) -> Row:
    last: dict[str, Path] = {}

    def fresh(tool: str) -> Path:
        if tool in last:
            shutil.rmtree(last[tool])
        last[tool] = pipelines.copy_repo(inputs.template(shape, n), inputs.fresh(f"run-{tool}"))
        return last[tool]

    def ours() -> float:
        repo = fresh("executor")
        seconds = tools.executor(repo, "run", "-j", str(config.jobs)).seconds
        check_outputs(repo, shape, n)
        return seconds

    def theirs() -> float:
        repo = fresh("dvc")
        seconds = tools.dvc(repo, "repro", "-q").seconds
        check_outputs(repo, shape, n)
        return seconds

    rounds = config.rounds if n <= 20 else config.slow_rounds
    stats = alternate({"executor": ours, "peer": theirs}, rounds, warmup)
    for tool, repo in last.items():  # what restore and all-hits start from
        inputs.remember_ran(tool, shape, n, repo)
    row = Row(
        "firstrun",
        f"{shape}, {n} stages, -j {config.jobs}",
        "dvc repro",
        stats["executor"],
        stats["peer"],
        target=TARGET if n == max(config.run_sizes) else None,
        plot=(f"first run, {shape}", n),
        note=CHAIN_NOTE if shape == "chain" else "",
    )
    if config.profile_misses and row.met is False:
        repo = pipelines.copy_repo(inputs.template(shape, n), inputs.fresh("run-profile"))
        row.profile = profile_threaded(tools, repo, ("run", "-j", str(config.jobs)))
        shutil.rmtree(repo)
    return row


BIG_STAGE = """\
stages:
  copy:
    cmd: cp big.bin out.bin
    deps: [big.bin]
    outs: [out.bin]
"""


def _big_output(config: Config, tools: Tools, inputs: Inputs) -> Row:
    """One stage copying the big file: the dependency hashed, the output hashed and stored in
    .dvc/cache. Each repository and its DVC state are new (no tool remembers a hash)."""
    big = inputs.big_file()
    made: list[Path] = []

    def fresh(tool: str) -> Path:
        for old in made:
            shutil.rmtree(old, ignore_errors=True)
        made.clear()
        repo = inputs.fresh(f"big-{tool}")
        pipelines.init_repo(repo, repo.parent / f"{repo.name}-dvc-site")
        made.extend([repo, repo.parent / f"{repo.name}-dvc-site"])
        (repo / "dvc.yaml").write_text(BIG_STAGE)
        os.link(big, repo / "big.bin")  # the same bytes, no copy to make per round
        return repo

    def ours() -> float:
        return tools.executor(fresh("executor"), "run").seconds

    def theirs() -> float:
        return tools.dvc(fresh("dvc"), "repro", "-q").seconds

    stats = alternate({"executor": ours, "peer": theirs}, config.slow_rounds, config.warmup)
    for old in made:
        shutil.rmtree(old, ignore_errors=True)
    size = big.stat().st_size
    return Row(
        "firstrun",
        f"one stage, a {size / 2**30:g} GiB output"
        if size >= 2**30
        else f"one stage, a {size >> 20} MiB output",
        "dvc repro",
        stats["executor"],
        stats["peer"],
        note="no target in the issues: each output byte is read once to commit it (hashed, "
        "then copied in the kernel), where dvc hashes it, then copies it",
    )


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    sizes = sorted(config.run_sizes)
    return [
        *(
            _one(config, tools, inputs, shape, n, warmup=config.warmup and n == sizes[0])
            for n in sizes
            for shape in config.shapes
        ),
        _big_output(config, tools, inputs),
    ]
