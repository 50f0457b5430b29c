"""The README's first command, as a new user runs it: scripts/example, end to end (local
runs, then a fleet of one worker on this machine), so the quick start never rots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.fixtures.repos import GIT_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_runs_here_and_on_a_fleet(busybox_image: str) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "example")],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, **GIT_ENV},
    )  # fmt: skip
    where = re.search(r"The example ran in (\S+) .* the fleet in (\S+)\.", done.stdout)
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs, team_a, team_b = (
            done.stdout.split("executor run   (nothing changed)")[0],
            *done.stdout.split("(team A's clone")[1].split("(team B's clone"),
        )
        assert runs.count("Running stage") == 5  # shout, count@A/E/O, report
        assert team_a.count("Running stage") == 5
        assert team_b.count("is cached - skipping run") == 5 and "Running stage" not in team_b
        assert "stage=report repeat=1" in team_b
    finally:
        if where:
            work = where.group(1)
            for path in (work, f"{work}.fleet", f"{work}.team-a", f"{work}.team-b"):
                shutil.rmtree(path, ignore_errors=True)
