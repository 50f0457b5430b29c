"""The loading projects (tests/oracle_projects_loading.py) through `executor submit`: a job
spec travels as JSON, which turns a params key `-2` into `'-2'`; the fleet must still give
DVC's dvc.lock and run-cache entries byte for byte, and restore from its own run-cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.fleet import Fleet, submit
from tests.fixtures.repos import run_cli
from tests.oracle_projects import build, lock_files, run_entries, stage_lines, workspace
from tests.oracle_projects_loading import PROJECTS


# Not subrepos nor walk_relatives: their commands list files no dep declares (a subrepo's, a
# .dvcignore'd one), which a worker is never sent, by design.
@pytest.mark.parametrize("project", ["params_scalar_keys", "params_globs"])
def test_submit_gives_what_dvc_repro_gives_and_restores_it(
    project: str,
    fleet: Fleet,
    busybox_image: str,
    dvc_bin: str,
    tmp_path: Path,
) -> None:
    theirs = build(tmp_path / "dvc", PROJECTS[project])
    ours = build(tmp_path / "submit", PROJECTS[project])
    expected = run_cli([dvc_bin, "repro", "-P"], theirs, {"SHELL": "/bin/sh"})
    assert expected.returncode == 0, expected.stdout + expected.stderr
    done = submit(ours, fleet, busybox_image, "-P")
    assert done.returncode == 0, done.stdout + done.stderr + fleet.worker_log()
    assert lock_files(ours) == lock_files(theirs)
    assert run_entries(ours) == run_entries(theirs)
    assert workspace(ours) == workspace(theirs)

    again = tmp_path / "again"
    shutil.copytree(ours, again, symlinks=True)
    shutil.rmtree(again / ".dvc" / "cache")
    ran = stage_lines(done.stdout, "ran")
    for rel in lock_files(again):
        (again / rel).unlink()
    for path in ("whole.txt", "dotted.txt", "data.txt", "model.txt", "summary.txt"):
        (again / path).unlink(missing_ok=True)
    restored = submit(again, fleet, busybox_image, "-P")
    assert restored.returncode == 0, restored.stdout + restored.stderr + fleet.worker_log()
    assert stage_lines(restored.stdout, "cached") == ran
    assert stage_lines(restored.stdout, "ran") == set()
    assert lock_files(again) == lock_files(theirs)
