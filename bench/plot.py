"""One PNG: wall time against pipeline size, executor and DVC, no-op and first run."""

from __future__ import annotations

from pathlib import Path

from bench.results import Row

COLOURS = {"executor": "tab:blue", "dvc": "tab:orange"}


def write(rows: list[Row], path: Path) -> bool:
    """Draw the plot; False (nothing written) when matplotlib is missing or nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
