"""The machine line: CPU, cores, memory, Docker, DVC, date and load (and the measured code,
which `bench.snapshot` describes)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _out(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def describe() -> dict[str, Any]:
    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "docker": _out(["docker", "version", "--format", "{{.Server.Version}}"]),
        "dvc": version("dvc"),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": os.getloadavg(),
    }


def line(meta: dict[str, Any]) -> str:
    load = "/".join(f"{x:.1f}" for x in meta["load_start"])
    end = "/".join(f"{x:.1f}" for x in meta.get("load_end", ()))
    return (
        f"{meta['cpu']}, {meta['cores']} cores, {meta['ram_gib']} GiB RAM; Docker "
        f"{meta['docker']}; DVC {meta['dvc']}; Python {meta['python']}; executor "
        f"{meta['executor_commit']}; {meta['date']}; load average {load} at the start"
        + (f", {end} at the end" if end else "")
    )
