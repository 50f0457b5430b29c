"""The benchmark harness at tiny sizes, so it never rots: every scenario runs and produces
numbers. Never a timing assertion: this machine is shared and noisy."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import PLOT, SCENARIOS
from bench.report import TITLES

ROOT = Path(__file__).resolve().parents[1]


def _needs(command: str) -> None:
    if shutil.which(command) is None:
        message = f"`{command}` is missing: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _numbers(row: dict[str, Any]) -> list[float]:
    found = [float(v) for v in row["extra"].values()]
    for side in ("executor", "peer"):
        if row[side] is not None:
            found += [row[side]["median"], row[side]["low"], row[side]["high"]]
    return found


def _run_bench(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the harness; past `timeout`, Ctrl-C it so that it stops the redis-server,
    moto_server and workers it started (a plain kill would leave them running), then fail."""
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"the quick benchmark took over {timeout:.0f} s: {err[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# A guard against a hung harness, not a speed limit: about two minutes on a quiet machine,
# past four when parallel tests and other users load its two cores.
QUICK_RUN_TIMEOUT = 540.0


@pytest.mark.timeout(QUICK_RUN_TIMEOUT + 60)
def test_quick_run_measures_every_scenario(busybox_image: str, tmp_path: Path) -> None:
    _needs("moto_server")
    _needs("dvc")
    _needs("redis-server")
    out = tmp_path / "out"
    done = _run_bench(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out),
         "--workdir", str(tmp_path / "work"), "--image", busybox_image],
        timeout=QUICK_RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {row["scenario"] for row in rows} == set(SCENARIOS)
    for row in rows:
        assert row["status"] == "measured", row
        numbers = _numbers(row)
        assert numbers and all(math.isfinite(x) and x >= 0 for x in numbers), row
        if row["target"] is not None:
            assert row["met"] in (True, False), row
    report = (out / "BENCHMARKS.md").read_text()
    for scenario in SCENARIOS:
        assert f"## {TITLES[scenario]}" in report
    assert "How to reproduce" in report
    assert not (tmp_path / "work").exists()  # inputs are removed afterwards
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / PLOT).stat().st_size > 0
