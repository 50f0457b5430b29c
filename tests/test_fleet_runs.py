"""An attached `executor submit` is a fleet run too: `executor runs`, `status`, `logs` and
`cancel` see and steer it from another shell. Real redis-server, moto_server, an
`executor-worker` process and the Docker engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.docker_env import containers_under
from tests.fixtures.fleet import Fleet, submit, submit_until_started
from tests.test_fleet_detached import LONG_FILES, cli, run_status, wait_for


def _run_of(root: Path, fleet: Fleet) -> str:
    listed = cli(root, fleet, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [r for r in json.loads(listed.stdout) if r["repo"] == str(root)]
    assert len(mine) == 1, listed.stdout
    assert mine[0]["detached"] is False
    return str(mine[0]["id"])


def test_another_shell_sees_and_cancels_an_attached_submission(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    root = make_repo(LONG_FILES)
    proc = submit_until_started(root, fleet, busybox_image)
    run_id = _run_of(root, fleet)
    doc = wait_for(root, fleet, run_id, lambda d: d["stages"]["long"]["state"] == "running")
    assert doc["run"]["state"] == "running"
    assert doc["stages"]["long"]["where"] not in ("", "-", "?")  # the worker's name
    assert doc["stages"]["after"]["state"] == "waiting"
    cancelled = cli(root, fleet, "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out + err
    assert "got INT" in out  # the stage's trap saw SIGINT
    doc = run_status(root, fleet, run_id)
    assert doc["run"]["state"] == "cancelled", doc
    assert doc["stages"]["long"]["state"] == "cancelled"
    assert doc["stages"]["after"]["state"] == "cancelled"  # never started
    logs = cli(root, fleet, "logs", run_id, "long")
    assert "started" in logs.stdout and "got INT" in logs.stdout, logs.stdout
    assert containers_under(docker_client, tmp_path, stage="long") == []
    assert not (root / "after.txt").exists()


def test_an_attached_run_records_what_each_stage_did(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    files = {
        "dvc.yaml": "stages:\n  one:\n    cmd: cat in.txt > out.txt\n    deps: [in.txt]\n"
        "    outs: [out.txt]\n",
        "in.txt": "x\n",
    }
    first = make_repo(files, "first")
    done = submit(first, fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the run's id goes to a terminal only
    doc = run_status(first, fleet, _run_of(first, fleet))
    assert doc["run"]["state"] == "succeeded"
    assert doc["stages"]["one"]["state"] == "ran"
    second = make_repo(files, "second")
    assert submit(second, fleet, busybox_image).returncode == 0
    doc = run_status(second, fleet, _run_of(second, fleet))
    assert doc["stages"]["one"]["state"] == "restored"  # from the fleet's run-cache
    fetched = cli(second, fleet, "fetch", doc["run"]["id"])
    assert fetched.returncode == 2 and "attached" in fetched.stderr, fetched.stderr
