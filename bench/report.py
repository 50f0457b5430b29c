"""BENCHMARKS.md from the rows of one harness run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.machine import line
from bench.measure import Stats
from bench.results import Row

TITLES = {
    "noop": "No-op run (nothing changed)",
    "allhits": "All-hits resolution (outputs and dvc.lock deleted, cache kept)",
    "firstrun": "First full run (each stage in its own container)",
    "restore": "Restore after deleting every output",
    "hashing": "Hashing",
    "transfer": "Push and pull (moto's S3 server on 127.0.0.1)",
    "overhead": "Per-stage overhead over bare `docker run`",
    "memory": "Coordinator memory (peak RSS)",
    "fleet": "Fleet mode (redis-server, moto's S3 server, workers on this machine)",
    "fleet-containers": "Fleet mode with worker containers (docker/worker, on this machine)",
}

METHOD = """\
Each scenario runs executor and its peer **alternately within every round** (the order flips
every other round) and reports the **median and the range (min–max)** of the rounds: {rounds}
rounds for cases of a second or so, {slow} for those that take a minute (first runs and restores
of 100 stages, transfers), after a warm-up round (first runs: one warm-up at the smallest size).
The machine is shared: other engineers run test suites on the same two cores while this runs,
so single figures are noisy (see the load average above); only ratios taken within one run mean
much. Every side is a fresh process started the same way (`executor`, `dvc`, `md5sum`,
`docker`, and `python -m bench.hash_cli` / `bench.raw_s3` for executor's directory hashing and
raw boto3), so interpreter start-up counts for everyone; the exceptions are said in the notes.
**ratio = executor ÷ peer** (time, or memory for RSS): below 1 executor is faster. First runs
use `executor run -j {jobs}`. Inputs are generated in a temporary directory: pipelines of
trivial `cat IN > OUT && echo N >> OUT` stages in chain and fan shapes, a random 1 GiB file, a
10,000-file directory (10 B–4 KB files in 100 folders) and 1,000 files of 4 KiB (`--quick`
shrinks all of these; the cases name their sizes). DVC's state
lives in the work directory (`core.site_cache_dir`), not in /var/tmp/dvc."""

REPRODUCE = """\
```sh
pip install -e '.[test,bench]'  # dvc, dvc-s3, moto; matplotlib for the plot; py-spy
export EXECUTOR_IMAGE=$(docker/build-image.sh busybox)   # optional: the harness builds it
python -m bench                          # full sizes, 15-25 min; writes BENCHMARKS.md + PNG
python -m bench --quick --out /tmp/b     # tiny sizes, one round (the smoke test's run)
python -m bench --only noop,restore      # some scenarios (see --help), --rounds N to shrink
python -m bench --from-results results.json --out DIR   # rewrite report and plot, run nothing
```"""


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _figure(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "—"
    if len(stats.samples) == 1:
        return _fmt(stats.median, unit)
    return f"{_fmt(stats.median, unit)} ({_fmt(stats.low, unit)}–{_fmt(stats.high, unit)})"


def _met(row: Row) -> str:
    if row.status != "measured":
        return row.status
    return {True: "**met**", False: "**missed**", None: "—"}[row.met]


def _ratio(row: Row) -> str:
    if row.target is not None and row.target.kind == "count":
        return f"{row.target.key} = {row.extra.get(row.target.key, float('nan')):.0f}"
    if row.target is not None and row.target.kind == "seconds" and row.executor:
        return _fmt(row.executor.median, "s")
    if row.target is not None and row.target.kind == "difference" and row.executor and row.peer:
        return f"{(row.executor.median - row.peer.median) * 1000:+.0f} ms"
    return "—" if row.ratio is None else f"{row.ratio:.2f}"


def _table(rows: list[Row]) -> list[str]:
    out = [
        "| case | executor | peer | peer figure | ratio | target | status |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        target = r.target.text if r.target else "—"
        out.append(
            f"| {r.case} | {_figure(r.executor, r.unit)} | {r.peer_name} | "
            f"{_figure(r.peer, r.unit)} | {_ratio(r)} | {target} | {_met(r)} |"
        )
    return out


def render(
    rows: list[Row], meta: dict[str, Any], plot: str | None, command: str, fleet: str | None = None
) -> str:
    out = [
        "# Benchmarks",
        "",
        f"Written by `{command}`; regenerate rather than edit.",
        "",
        f"**Machine:** {line(meta)}."
        + (f" The whole run took {meta['seconds'] / 60:.0f} minutes." if "seconds" in meta else ""),
        "",
        METHOD.format(
            rounds=meta.get("rounds", "?"),
            slow=meta.get("slow_rounds", "?"),
            jobs=meta.get("jobs", "?"),
        ),
        "",
        "## How to reproduce",
        "",
        REPRODUCE,
        "",
        "## Targets",
        "",
        "| scenario | case | ratio | target | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.target is not None or r.status != "measured":
            target = r.target.text if r.target else "—"
            out.append(f"| {r.scenario} | {r.case} | {_ratio(r)} | {target} | {_met(r)} |")
    for scenario, title in TITLES.items():
        mine = [r for r in rows if r.scenario == scenario]
        if not mine:
            continue
        out += ["", f"## {title}", "", *_table(mine)]
        notes = [f"- {r.case}: {r.note}" for r in mine if r.note]
        if notes:
            out += ["", *notes]
        if scenario == "firstrun" and plot:
            out += ["", f"![wall time against pipeline size]({plot})"]
        if scenario == "fleet" and fleet:
            out += ["", f"![fleet jobs per second against workers]({fleet})"]
    profiled = [r for r in rows if r.profile]
    if profiled:
        out += ["", "## Where the time goes (profiles of the misses)", ""]
        out.append(
            "Single-threaded commands (no-op, restore): cProfile of `executor.cli.main` "
            "in-process, started before it is imported. Threaded ones (first run, transfers): "
            "py-spy over every thread, idle included, so time spent waiting on Docker or S3 "
            "shows; in thread-seconds. Hashing: cProfile of the Hasher in-process. Each is taken "
            "after the measured rounds, in one extra run."
        )
        for r in profiled:
            out += ["", f"### {TITLES[r.scenario]}: {r.case}", "", "```", r.profile, "```"]
    return "\n".join(out) + "\n"


def write(
    rows: list[Row],
    meta: dict[str, Any],
    plot: str | None,
    command: str,
    path: Path,
    fleet: str | None = None,
) -> None:
    path.write_text(render(rows, meta, plot, command, fleet))
