"""executor and DVC never work in one repository at once: DVC's repository lock, and the
per-path locks (`.dvc/tmp/rwlock`) `dvc repro` holds alone while a stage's command runs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from executor.dvcformat.rwlock import live_holders

SLOW = """\
stages:
  slow:
    cmd: touch started && while [ ! -e go ]; do sleep 0.05; done && cp in.txt out.txt
    deps: [in.txt]
    outs: [out.txt]
"""


def wait_for(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_executor_refuses_while_dvc_repro_runs_a_stage(
    make_repo, executor_cli, dvc_bin: str
) -> None:
    root = make_repo({"dvc.yaml": SLOW, "in.txt": "x\n"})
    dvc = subprocess.Popen(
        [dvc_bin, "repro"], cwd=root, env={**os.environ, "SHELL": "/bin/sh"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (root / "started").exists(), "dvc repro to start the stage")
        writes = [h.path for h in live_holders(root / ".dvc/tmp") if h.mode == "write"]
        assert writes == [str(root / "out.txt")]  # the only lock DVC holds now
        refused = executor_cli(root, "run")
        assert refused.returncode == 2, refused.stderr
        assert "DVC is running" in refused.stderr and "rwlock" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (root / "dvc.lock").exists()  # executor wrote nothing
        (root / "go").touch()
        out, _ = dvc.communicate(timeout=120)
        assert dvc.returncode == 0, out
    finally:
        (root / "go").touch()  # a failed assertion above must not leave the stage waiting
        if dvc.poll() is None:
            try:
                dvc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dvc.kill()
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert "didn't change" in done.stdout


def test_entries_of_dead_processes_do_not_count(tmp_path: Path) -> None:
    dead = 4_194_304 + 1  # above Linux's largest pid_max: never a live process
    (tmp_path / "rwlock").write_text(
        json.dumps(
            {
                "write": {"/r/out.txt": {"pid": dead, "cmd": "dvc repro"}},
                "read": {"/r/in.txt": [{"pid": os.getpid(), "cmd": "dvc status"}]},
            }
        )
    )
    holders = live_holders(tmp_path)
    assert [(h.path, h.pid, h.mode) for h in holders] == [("/r/in.txt", os.getpid(), "read")]


def test_with_hardlink_locks_the_rwlock_is_read_without_creating_dvcs_guard(
    tmp_path: Path,
) -> None:
    """core.hardlink_lock: DVC guards the rwlock with a lock file of flufl's kind; a plain
    rwlock.lock left behind would read as held to it."""
    (tmp_path / "rwlock").write_text(
        json.dumps({"write": {"/r/out.txt": {"pid": os.getpid(), "cmd": "dvc repro"}}})
    )
    holders = live_holders(tmp_path, guarded=False)
    assert [(h.path, h.mode) for h in holders] == [("/r/out.txt", "write")]
    assert not (tmp_path / "rwlock.lock").exists()
