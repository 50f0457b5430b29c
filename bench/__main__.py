"""python -m bench [--quick] [--only SCENARIO,...] [--out DIR] [--rounds N] [--keep]

Generates its inputs in a temporary directory, runs each scenario for executor and its peer
alternately, and writes BENCHMARKS.md, results.json and the plot (PNG) into --out (default:
the repository root for a full run of every scenario, else a new temporary directory).
`--from-results JSON` runs nothing and rewrites the report and plot from a results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    firstrun,
    fleet,
    fleetcontainers,
    hashing,
    machine,
    memory,
    noop,
    overhead,
    plot,
    report,
    restore,
    snapshot,
    transfer,
)
from bench.config import Config
from bench.inputs import Inputs
from bench.results import Row, load, save
from bench.tools import Tools

ROOT = Path(__file__).resolve().parents[1]
PLOT = "bench-pipeline-size.png"
FLEET_PLOT = "bench-fleet-jobs.png"
Scenario = Callable[[Config, Tools, Inputs], list[Row]]
# In this order: restore and all-hits start from the repositories the first runs leave.
SCENARIOS: dict[str, Scenario] = {
    "noop": noop.scenario,
    "firstrun": firstrun.scenario,
    "allhits": restore.all_hits,
    "restore": restore.restore,
    "overhead": overhead.scenario,
    "hashing": hashing.scenario,
    "transfer": transfer.scenario,
    "memory": memory.scenario,
    "fleet": fleet.scenario,
    "fleet-containers": fleetcontainers.scenario,
}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _image(given: str | None) -> str:
    if given:
        return given
    build = ROOT / "docker" / "build-image.sh"
    done = subprocess.run([str(build), "busybox"], check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def _env(image: str, workdir: Path) -> dict[str, str]:
    snap = snapshot.active(os.environ)
    first = [str(snap[1])] if snap else []  # the measured copy of executor before the checkout
    # As on a user's machine, every tool reads its compiled bytecode (pip compiles what it
    # installs; the snapshot is compiled when made): with this set, executor would compile
    # its modules from source on every run, and dvc would not.
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **inherited,
        "EXECUTOR_IMAGE": image,
        "PYTHONPATH": os.pathsep.join([*first, str(ROOT)]),
        "DVC_NO_ANALYTICS": "1",
        # The harness's own repositories, root's when it runs as root: stages as root too.
        "EXECUTOR_ALLOW_ROOT_STAGES": "1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(workdir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials"),
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=None, help="where reports go")
    parser.add_argument("--workdir", type=Path, default=None, help="inputs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--rounds", type=int, default=None, help="override the round counts")
    parser.add_argument("--jobs", type=int, default=None, help="executor run -j for first runs")
    parser.add_argument("--image", default=os.environ.get("EXECUTOR_IMAGE"))
    code = parser.add_mutually_exclusive_group()
    code.add_argument(
        "--commit",
        metavar="REV",
        default=None,
        help="measure this commit's executor (default for a full run into the repository: HEAD)",
    )
    code.add_argument(
        "--worktree", action="store_true", help="measure the checkout as it is, edits and all"
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: rewrite the report and plot from a results.json",
    )
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        known = ", ".join(SCENARIOS)
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {known}")
    args.only = only or list(SCENARIOS)
    return args


def _write(rows: list[Row], meta: dict[str, Any], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    drawn = plot.write(rows, out / PLOT)
    fleet_drawn = plot.write_fleet(rows, out / FLEET_PLOT)
    report.write(
        rows,
        meta,
        PLOT if drawn else None,
        command,
        out / "BENCHMARKS.md",
        FLEET_PLOT if fleet_drawn else None,
    )
    _log(f"wrote {out / 'BENCHMARKS.md'}")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (paths and --keep left out)."""
    parts = ["python -m bench"]
    parts += ["--quick"] if args.quick else []
    parts += [f"--only {','.join(args.only)}"] if args.only != list(SCENARIOS) else []
    parts += [f"--rounds {args.rounds}"] if args.rounds is not None else []
    parts += [f"--jobs {args.jobs}"] if args.jobs is not None else []
    parts += [f"--commit {args.commit}"] if args.commit else []
    parts += ["--worktree"] if args.worktree else []
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.from_results is not None:
        rows, meta = load(args.from_results)
        _write(rows, meta, args.out or args.from_results.parent, meta.get("command", "?"))
        return 0
    complete = not args.quick and args.only == list(SCENARIOS)
    out: Path = args.out or (ROOT if complete else Path(tempfile.mkdtemp(prefix="bench-out-")))
    out.mkdir(parents=True, exist_ok=True)
    workdir: Path = (args.workdir or Path(tempfile.mkdtemp(prefix="executor-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rev = args.commit or ("HEAD" if complete and not args.worktree else None)
    if rev and snapshot.active(os.environ) is None:
        given = list(argv if argv is not None else sys.argv[1:])
        snapshot.rerun(ROOT, rev, workdir, [*given, "--out", str(out.resolve())])
    image = _image(args.image)
    make = Config.tiny if args.quick else Config.full
    config = make(workdir, out, image, _env(image, workdir))
    if args.rounds is not None:
        config = dataclasses.replace(config, rounds=args.rounds, slow_rounds=args.rounds)
    if args.jobs is not None:
        config = dataclasses.replace(config, jobs=args.jobs)
    tools = Tools(config)
    inputs = Inputs(config, tools)
    meta = machine.describe()
    meta["executor_commit"] = snapshot.describe(ROOT, os.environ)
    meta.update(rounds=config.rounds, slow_rounds=config.slow_rounds, jobs=config.jobs)
    rows: list[Row] = []
    failed = False
    started = time.perf_counter()
    try:
        for name in args.only:
            _log(f"{name}: start")
            t0 = time.perf_counter()
            try:
                got = SCENARIOS[name](config, tools, inputs)
            except Exception as exc:  # one broken scenario must not sink a 25-minute run
                failed = True
                _log(f"{name}: FAILED\n{traceback.format_exc()}")
                got = [Row(name, "(scenario failed)", "—", status="failed", note=str(exc)[:500])]
            rows += got
            _log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
            for row in got:
                _log(f"  {row.case}: ratio {row.ratio} met {row.met} {row.note[:100]}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["load_end"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - started
    meta["command"] = _command(args)
    save(rows, meta, out / "results.json")
    _write(rows, meta, out, meta["command"])
    _log(f"done in {meta['seconds']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
