"""Where a threaded executor command spends its time: py-spy samples every thread (idle ones
too, so waiting on Docker or S3 shows), aggregated per executor/worker function."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

from bench.tools import Tools

RATE = 100  # samples per second
FRAME = re.compile(r"^(?P<name>.+) \((?P<file>[^():]+)(?::\d+)?\)$")
OURS = re.compile(r"[(/](executor|worker)/")


def available() -> bool:
    return shutil.which("py-spy") is not None


def spy_executor(tools: Tools, repo: Path, args: tuple[str, ...], top: int = 18) -> str:
    """Run `executor ARGS` in `repo` under py-spy; a table of the heaviest functions."""
    raw = repo.parent / f"{repo.name}.spy.txt"
    executor = shutil.which("executor") or "executor"
    argv = ["py-spy", "record", "-r", str(RATE), "--idle", "-t", "-f", "raw", "-o", str(raw)]
    tools.command([*argv, "--", executor, *args], cwd=repo)
    try:
        return summarise(raw.read_text(), top)
    finally:
        raw.unlink(missing_ok=True)


def summarise(raw: str, top: int) -> str:
    """Inclusive samples per executor/worker function and the leaves where threads sit."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        threads[frames[0]] += n
        total += n
        names = [_name(f) for f in frames[1:]]
        for name in {x for x in names if OURS.search(x)}:
            inclusive[name] += n
        if names:
            leaves[names[-1]] += n
    wall = max(threads.values(), default=0) / RATE
    out = [
        f"py-spy at {RATE} Hz over every thread, idle included: {len(threads)} threads, "
        f"{total / RATE:.1f} thread-seconds in ~{wall:.1f} s of wall time",
        "executor's own functions, inclusive thread-seconds:",
    ]
    out += [f"  {n / RATE:8.2f} s  {name}" for name, n in inclusive.most_common(top)]
    out.append("where the threads sit (leaf frames), thread-seconds:")
    out += [f"  {n / RATE:8.2f} s  {name}" for name, n in leaves.most_common(8)]
    return "\n".join(out)


def _name(frame: str) -> str:
    found = FRAME.match(frame)
    return f"{found['name']} ({found['file']})" if found else frame
