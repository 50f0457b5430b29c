"""Detached runs through the fleet's faults: a worker drained or killed mid-stage hands its
stage to another, and ten submissions of one pipeline at once (attached and detached mixed)
run each stage once. Real redis-server, moto_server, `executor-worker` processes, Docker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.fleet import Fleet, outputs, start_worker, stop_worker, work_horses
from tests.fixtures.repos import GIT_ENV
from tests.test_fleet_detached import cli, detach, ended, long_files, wait_for

LONG = long_files(4)


def _running(root: Path, fleet: Fleet, run_id: str) -> None:
    wait_for(root, fleet, run_id, lambda d: d["stages"]["long"]["state"] == "running")


def test_a_drained_workers_stage_finishes_on_another_worker(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    stop_worker(fleet.worker)
    env = {**fleet.env, "EXECUTOR_WORKER_DRAIN_GRACE": "1"}
    first = fleet.worker = start_worker(env, tmp_path / "first-home", fleet.log)
    fleet.wait_for_workers(1)
    root = make_repo(LONG)
    run_id = detach(root, fleet, busybox_image)
    _running(root, fleet, run_id)
    first.send_signal(signal.SIGTERM)
    assert first.wait(120) == 0
    second = start_worker(fleet.env, tmp_path / "second-home", tmp_path / "second.log")
    try:
        doc = wait_for(root, fleet, run_id, ended)
        assert doc["run"]["state"] == "succeeded", doc
        assert doc["stages"]["long"]["attempts"] == 2  # handed over once
        assert cli(root, fleet, "fetch", run_id).returncode == 0
        assert (root / "after.txt").read_text() == "ok\n"
    finally:
        stop_worker(second)


def test_a_killed_workers_stage_runs_again_on_another_worker(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    root = make_repo(LONG)
    run_id = detach(root, fleet, busybox_image)
    _running(root, fleet, run_id)
    for pid in [fleet.worker.pid, *work_horses(fleet.worker.pid)]:
        os.kill(pid, signal.SIGKILL)
    fleet.worker.wait()
    fleet.worker = start_worker(fleet.env, tmp_path / "second-home", tmp_path / "second.log")
    doc = wait_for(root, fleet, run_id, ended, timeout=240)
    assert doc["run"]["state"] == "succeeded", doc
    assert doc["stages"]["long"]["attempts"] == 2
    assert cli(root, fleet, "fetch", run_id).returncode == 0
    assert (root / "after.txt").read_text() == "ok\n"


MANY = {
    "dvc.yaml": """\
stages:
  a:
    cmd: echo EXECUTED-a; sleep 1; cat in.txt > a.txt
    deps: [in.txt]
    outs: [a.txt]
  b:
    cmd: echo EXECUTED-b; cat a.txt a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
  c:
    cmd: echo EXECUTED-c; sleep 1; cat in.txt in.txt > c.txt
    deps: [in.txt]
    outs: [c.txt]
""",
    "in.txt": "shared\n",
}


def _executions(fleet: Fleet) -> list[str]:
    """Every `EXECUTED-x` line any job printed, from the jobs' log streams in Redis."""
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    found = []
    for key in client.scan_iter("executor:job:*:events"):
        for _, fields in client.xrange(key):
            text = fields.get(b"v", b"").decode()
            if fields.get(b"t") == b"log" and text.startswith("EXECUTED-"):
                found.append(text)
    return sorted(found)


def test_ten_concurrent_submissions_attached_and_detached_run_each_stage_once(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    second = start_worker(fleet.env, tmp_path / "second-home", tmp_path / "second.log")
    try:
        fleet.wait_for_workers(2)
        roots = [make_repo(MANY, f"clone{i}") for i in range(10)]
        env = {**os.environ, **GIT_ENV, **fleet.env, "EXECUTOR_IMAGE": busybox_image}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "executor", "submit", *(["--detach"] if i % 2 else [])],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, root in enumerate(roots)
        ]
        runs = {}
        for i, (root, proc) in enumerate(zip(roots, procs, strict=True)):
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, out + err + fleet.worker_log()
            if i % 2:
                runs[root] = out.strip().splitlines()[-1]
        for root, run_id in runs.items():
            doc = wait_for(root, fleet, run_id, ended)
            assert doc["run"]["state"] == "succeeded", doc
            fetched = cli(root, fleet, "fetch", run_id)
            assert fetched.returncode == 0, fetched.stderr
        assert _executions(fleet) == ["EXECUTED-a", "EXECUTED-b", "EXECUTED-c"]
        first = outputs(roots[0])
        assert all(outputs(root) == first for root in roots[1:])
        assert (roots[0] / "b.txt").read_text() == "shared\nshared\n"
    finally:
        stop_worker(second)
