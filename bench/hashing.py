"""Hashing: a big file against `md5sum` (throughput: executor's Hasher in-process), a many-file
directory against `dvc add --no-commit` (both cold), and a second pass over unchanged data
(both with their state warm). For the directory both sides are fresh processes, so interpreter
start-up counts for executor as it does for DVC."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.inputs import Inputs
from bench.measure import alternate
from bench.profiling import profile_call
from bench.results import Row, Target
from bench.tools import Tools
from executor.hashing.hasher import Hasher

HASH_CLI = "bench.hash_cli"


def _forget(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def big_file(config: Config, tools: Tools, inputs: Inputs) -> Row:
    big = inputs.big_file()
    mib = config.big_bytes / 2**20
    expected = tools.command(["md5sum", str(big)]).stdout.split()[0]

    def ours() -> float:
        with Hasher(None) as hasher:
            started = time.perf_counter()
            md5 = hasher.hash_path(big).md5
            seconds = time.perf_counter() - started
        if md5 != expected:
            raise RuntimeError(f"executor hashed {big} as {md5}, md5sum says {expected}")
        return seconds

    cases = {
        "executor": ours,
        "peer": lambda: tools.command(["md5sum", str(big)]).seconds,
    }
    stats = alternate(cases, config.rounds, config.warmup)
    row = Row(
        "hashing",
        f"{mib:.0f} MiB file (page cache warm)",
        "md5sum",
        stats["executor"],
        stats["peer"],
        target=Target("≥ 90% of md5sum's throughput", "ratio", 1 / 0.9),
        note=f"executor {mib / stats['executor'].median:.0f} MiB/s, "
        f"md5sum {mib / stats['peer'].median:.0f} MiB/s; executor's Hasher timed in-process "
        "(the hashing code's throughput), md5sum as a process (its start-up is ~1 ms)",
    )
    if config.profile_misses and row.met is False:
        row.profile = profile_call(ours)
    return row


def tree(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    repo = inputs.fresh("hash-tree")
    pipelines.init_repo(repo, inputs.site_cache)
    data = repo / "data"
    shutil.copytree(inputs.tree(), data)  # copy2 keeps the aged mtimes
    state = repo / ".dvc" / "tmp" / "bench-state.sqlite"
    executor_state = [Path(f"{state}{s}") for s in ("", "-wal", "-shm")]
    dvc_state = [inputs.site_cache / "repo", repo / "data.dvc"]
    read: list[int] = []

    def executor_pass(cold: bool) -> float:
        if cold:
            _forget(executor_state)
        done = tools.python(HASH_CLI, str(data), "--root", str(repo), "--state", str(state))
        read.append(int(json.loads(done.stdout)["files_read"]))
        return done.seconds

    def dvc_pass(cold: bool) -> float:
        if cold:
            _forget(dvc_state)
        return tools.dvc(repo, "add", "--no-commit", "-q", "data").seconds

    n = config.tree_files
    cold = alternate(
        {"executor": lambda: executor_pass(True), "peer": lambda: dvc_pass(True)},
        config.rounds,
        config.warmup,
    )
    read.clear()
    warm = alternate(
        {"executor": lambda: executor_pass(False), "peer": lambda: dvc_pass(False)},
        config.rounds,
        warmup=True,  # the warm-up is the first pass that fills both states
    )
    return [
        Row(
            "hashing",
            f"{n:,}-file directory, first pass",
            "dvc add --no-commit",
            cold["executor"],
            cold["peer"],
            target=Target("faster than dvc add --no-commit", "ratio", 1.0),
            note="both cold: no state; executor writes its state as DVC does",
        ),
        Row(
            "hashing",
            f"{n:,}-file directory, second pass (unchanged)",
            "dvc add --no-commit (warm state)",
            warm["executor"],
            warm["peer"],
            target=Target("a second run reads no file content", "count", key="files_read"),
            note=f"files read by executor's second passes: {max(read[1:] or read)}",
            extra={"files_read": float(max(read[1:] or read))},
        ),
    ]


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    return [big_file(config, tools, inputs), *tree(config, tools, inputs)]
