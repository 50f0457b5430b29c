"""Sizes, rounds and the environment of one harness run (full or `--quick`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

GIB, MIB, KIB = 2**30, 2**20, 2**10


@dataclass(frozen=True)
class Config:
    """Everything the scenarios read; built once in `bench.__main__`."""

    quick: bool
    workdir: Path  # inputs and repositories, removed afterwards unless --keep
    out: Path  # where BENCHMARKS.md, results.json and the plot go
    image: str  # the stage image (docker/build-image.sh busybox)
    env: Mapping[str, str]  # environment of every command the harness starts
    rounds: int = 4  # rounds of cheap cases (a second or so each)
    slow_rounds: int = 2  # rounds of cases that take a minute
    warmup: bool = True
    profile_misses: bool = True  # profile executor where it misses a target (one extra run)
    jobs: int = 4  # `executor run -j` for first runs (fan shapes run this many containers)
    shapes: tuple[str, ...] = ("chain", "fan")
    noop_sizes: tuple[int, ...] = (20, 100, 500)
    run_sizes: tuple[int, ...] = (20, 100)
    restore_size: int = 100
    memory_stages: int = 500
    overhead_stages: int = 20
    sandbox_runs: int = 10
    big_bytes: int = GIB  # the big file hashed against md5sum
    tree_files: int = 10_000  # the directory hashed and the nothing-to-move set
    small_files: int = 1_000  # pushed and pulled
    small_bytes: int = 4 * KIB
    transfer_big_bytes: int = 256 * MIB  # 0: no big-file transfer case
    raw_threads: int = 16  # raw boto3's thread pool, the server's ceiling
    changed_files: tuple[int, ...] = (10, 100)  # push after this many files of the tree changed
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def full(cls, workdir: Path, out: Path, image: str, env: Mapping[str, str]) -> Config:
        return cls(False, workdir, out, image, env)

    @classmethod
    def tiny(cls, workdir: Path, out: Path, image: str, env: Mapping[str, str]) -> Config:
        """--quick: every scenario, tiny sizes, one shape, one round, no warm-up."""
        return cls(
            True,
            workdir,
            out,
            image,
            env,
            rounds=1,
            slow_rounds=1,
            warmup=False,
            profile_misses=False,
            jobs=2,
            shapes=("chain",),
            noop_sizes=(3,),
            run_sizes=(3,),
            restore_size=3,
            memory_stages=4,
            overhead_stages=2,
            sandbox_runs=1,
            big_bytes=4 * MIB,
            tree_files=200,
            small_files=20,
            transfer_big_bytes=0,
            raw_threads=4,
            changed_files=(1,),
        )
