"""The PNGs: wall time against pipeline size (executor and DVC, no-op and first run), and a
fleet's jobs per second against its number of workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.results import Row

COLOURS = {"executor": "tab:blue", "dvc": "tab:orange"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write(rows: list[Row], path: Path) -> bool:
    """Draw the plot; False (nothing written) when matplotlib is missing or nothing to plot."""
    plt = _pyplot()
    if plt is None:
        return False
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for row in rows:
        if row.plot is None or row.executor is None or row.peer is None:
            continue
        name, size = row.plot
        for who, stats in (("executor", row.executor), ("dvc", row.peer)):
            point = (size, stats.median, stats.low, stats.high)
            series.setdefault((who, name), []).append(point)
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for (who, name), points in sorted(series.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        points.sort()
        ax.errorbar(
            [p[0] for p in points],
            [p[1] for p in points],
            yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
            color=COLOURS[who],
            linestyle="-" if name.startswith("first run") else "--",
            marker="o" if name.endswith("chain") else "s",
            capsize=3,
            label=f"{'executor run' if who == 'executor' else 'dvc repro'}: {name}",
        )
    sizes = sorted({p[0] for points in series.values() for p in points})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("stages in the pipeline")
    ax.set_ylabel("wall time, seconds (median; bars: range)")
    ax.set_title("executor run vs dvc repro: first run (solid) and no-op (dashed)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_fleet(rows: list[Row], path: Path) -> bool:
    """Jobs per second through the fleet against its workers (rows with `workers` and
    `jobs_per_s` in their extra figures), beside `executor run -j W`'s stages per second."""

    def series(containers: bool) -> list[tuple[int, float, float]]:
        return sorted(
            (int(r.extra["workers"]), r.extra["jobs_per_s"], r.extra.get("run_per_s", 0.0))
            for r in rows
            if "workers" in r.extra
            and "jobs_per_s" in r.extra
            and bool(r.extra.get("containers")) == containers
        )

    points, boxed = series(False), series(True)
    plt = _pyplot()
    if plt is None or not (points or boxed):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    workers = sorted({p[0] for p in points + boxed})
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=COLOURS["executor"],
                label="executor submit: jobs/s, W worker processes")  # fmt: skip
    if boxed:
        ax.plot([p[0] for p in boxed], [p[1] for p in boxed], "^-", color="tab:green",
                label="executor submit: jobs/s, W worker containers")  # fmt: skip
    runs = points or boxed
    ax.plot([p[0] for p in runs], [p[2] for p in runs], "s--", color="tab:gray",
            label="executor run -j W: stages/s")  # fmt: skip
    ax.set_xticks(workers, [str(w) for w in workers])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("workers (or -j)")
    ax.set_ylabel("trivial stages per second (median)")
    ax.set_title("fleet throughput: a fan of trivial stages, workers on this machine")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
