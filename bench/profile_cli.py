"""Run `executor.cli.main` in this process under cProfile and print the top entries as JSON:

    python -m bench.profile_cli [--top N] -- run [ARGS...]   (in the repository)

The profiler starts before `executor.cli` is imported, so import time shows. `heavy` lists the
heavy modules (docker, boto3, ...) the command imported.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time

HEAVY = ("docker", "boto3", "botocore", "redis", "rq", "dvc", "rich.progress")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=18)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else args.argv
    before = set(sys.modules)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    code: object = 0
    try:
        import executor
        from executor.cli.app import main as cli

        cli(args=argv, prog_name="executor", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
    profiler.disable()
    seconds = time.perf_counter() - started
    heavy = sorted(m for m in HEAVY if m in sys.modules and m not in before)
    tables = {}
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order)
        stats.print_stats(args.top)
        tables[order] = _table(text.getvalue())
    # executor's and worker's own functions by cumulative time, paths from the checkout
    root = os.path.dirname(os.path.dirname(os.path.abspath(executor.__file__)))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
    stats.print_stats(r"/(executor|worker)/(?!.*<module>)", args.top)
    tables["ours"] = _table(text.getvalue()).replace(root + os.sep, "")
    print(json.dumps({"exit": code, "seconds": seconds, "heavy": heavy, **tables}))


def _table(text: str) -> str:
    """pstats' table without its preamble (the header line onwards)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


if __name__ == "__main__":
    main()
