"""Timing: run commands, and alternate executor and its peer within each round."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# A case does its own untimed setup and returns the seconds its timed part took.
Case = Callable[[], float]


class CommandFailed(RuntimeError):
    """A benchmarked command exited non-zero; carries the tail of its output."""

    def __init__(self, argv: Sequence[str], code: int, tail: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {code}:\n{tail}")
        self.argv, self.code, self.tail = list(argv), code, tail


@dataclass(frozen=True)
class Run:
    """One finished command: wall seconds and (when asked for) its peak RSS."""

    seconds: float
    max_rss_kib: int
    stdout: str


@dataclass(frozen=True)
class Stats:
    """Median and range of a series of samples."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict[str, object]:
        return {
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "samples": list(self.samples),
        }


def run(
    argv: Sequence[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    rss: bool = False,
) -> Run:
    """Run `argv`, raise CommandFailed on a non-zero exit. With `rss`, the command starts from
    `bench.rss` (see why there) and `max_rss_kib` is its process tree's peak; else 0."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as peak,
    ):
        wrap = [sys.executable, "-m", "bench.rss", peak.name, "--"] if rss else []
        started = time.perf_counter()
        code = subprocess.run(
            [*wrap, *argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            check=False,
        ).returncode
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if code != 0:
            tail = (stdout + err.read().decode(errors="replace"))[-2000:]
            raise CommandFailed(argv, code, tail)
        max_rss = int(peak.read() or 0) if rss else 0
    return Run(seconds, max_rss, stdout)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(cases: Mapping[str, Case], rounds: int, warmup: bool) -> dict[str, Stats]:
    """Run every case once per round, reversing the order every other round so that load on
    a shared machine falls on all of them alike; an optional warm-up round is not recorded."""
    names = list(cases)
    if warmup:
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            samples[name].append(cases[name]())
    return {name: Stats(tuple(values)) for name, values in samples.items()}
