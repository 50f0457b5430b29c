"""Where executor's time goes when it misses a target: cProfile's top entries, in-process."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import spy
from bench.tools import Tools


@dataclass(frozen=True)
class Profile:
    seconds: float
    heavy: tuple[str, ...]  # heavy modules the command imported
    cumulative: str
    tottime: str
    ours: str  # executor's and worker's own functions, by cumulative time

    def text(self) -> str:
        heavy = ", ".join(self.heavy) or "none"
        return (
            f"profiled wall {self.seconds:.3f} s; heavy modules imported: {heavy}\n"
            f"executor's own functions by cumulative time:\n{self.ours}\n\n"
            f"everything by cumulative time:\n{self.cumulative}\n\n"
            f"everything by own time:\n{self.tottime}"
        )


def profile_executor(
    tools: Tools, repo: Path, args: tuple[str, ...], prepare: Callable[[], None] | None = None
) -> Profile:
    """Profile `executor ARGS` in `repo` (after `prepare`, e.g. deleting outputs)."""
    if prepare is not None:
        prepare()
    done = tools.python("bench.profile_cli", "--", *args, cwd=repo)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if data["exit"] not in (0, None):
        raise RuntimeError(f"profiled `executor {' '.join(args)}` exited {data['exit']}")
    return Profile(
        data["seconds"], tuple(data["heavy"]), data["cumulative"], data["tottime"], data["ours"]
    )


def profile_threaded(tools: Tools, repo: Path, args: tuple[str, ...]) -> str:
    """For commands whose work runs in threads (containers, transfers): py-spy over every
    thread when it is installed, else cProfile (which sees the main thread only)."""
    if spy.available():
        return spy.spy_executor(tools, repo, args)
    note = "py-spy is not installed (pip install py-spy): cProfile sees the main thread only\n"
    return note + profile_executor(tools, repo, args).text()


def profile_call(fn: Callable[[], object], top: int = 12) -> str:
    """cProfile of `fn` in this process, top entries by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(top)
    lines = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "cProfile in-process, by own time:\n" + "\n".join(
        line.rstrip() for line in lines[start:] if line.strip()
    )
