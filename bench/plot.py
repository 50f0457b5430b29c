"""One PNG: wall time against pipeline size, executor and DVC, no-op and first run."""

from __future__ import annotations

from pathlib import Path

from bench.results import Row


def write(rows: list[Row], path: Path) -> bool:
    """Draw the plot; False (nothing written) when matplotlib is missing or nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[str, list[tuple[int, float, float, float]]] = {}
    for row in rows:
        if row.plot is None or row.executor is None or row.peer is None:
            continue
        name, size = row.plot
        for who, stats in (("executor", row.executor), ("dvc", row.peer)):
            series.setdefault(f"{who}: {name}", []).append(
                (size, stats.median, stats.low, stats.high)
            )
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for label, points in sorted(series.items()):
        points.sort()
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        style = "-" if label.startswith("executor") else "--"
        marker = "o" if "no-op" in label else "s"
        ax.errorbar(xs, ys, yerr=errors, fmt=style + marker, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("stages in the pipeline")
    ax.set_ylabel("wall time, seconds (median, bars: range)")
    ax.set_title("executor run vs dvc repro")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
