"""Workers that drain: SIGTERM takes no new job and gives the running stage a grace; a stage
that outlasts it is stopped and finishes on another worker. Real redis-server, moto_server,
`executor-worker` processes and the Docker engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from executor.errors import ConfigError
from tests.fixtures.docker_env import containers_under
from tests.fixtures.fleet import Fleet, one_stage, start_worker, stop_worker, submit_until_started
from tests.fixtures.repos import GIT_ENV
from worker.config import WorkerConfig


def _drained(fleet: Fleet, grace: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The fleet's worker restarted with a drain grace of `grace` seconds."""
    stop_worker(fleet.worker)
    env = {**fleet.env, "EXECUTOR_WORKER_DRAIN_GRACE": grace}
    fleet.worker = start_worker(env, tmp_path / "worker-home", fleet.log)
    fleet.wait_for_workers(1)
    return fleet.worker


def _no_containers(docker_client: Any, tmp_path: Path, stage: str) -> None:
    assert containers_under(docker_client, tmp_path, stage=stage) == []


def test_a_stage_outlasting_the_drain_grace_finishes_on_another_worker(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    first = _drained(fleet, "1", tmp_path)
    stage = "echo started; trap 'echo got INT; exit 130' INT; sleep 6 & wait; echo ok > out.txt"
    root = make_repo(one_stage("long", stage))
    proc = submit_until_started(root, fleet, busybox_image)
    first.send_signal(signal.SIGTERM)
    assert first.wait(120) == 0  # a warm shutdown: the worker waited for its job, then left
    second_log = tmp_path / "second.log"
    second = start_worker(fleet.env, tmp_path / "second-home", second_log)
    try:
        out, err = proc.communicate(timeout=180)
        logs = fleet.worker_log() + second_log.read_text()
        assert proc.returncode == 0, out + err + logs
        assert "got INT" in out  # the first run was stopped as a cancelled stage is
        assert "its worker was stopped before the stage ended; another worker runs it" in out
        assert out.splitlines().count("[long] started") == 1  # the second run (the first was read)
        assert (root / "out.txt").read_text() == "ok\n"
        assert "out.txt" in (root / "dvc.lock").read_text()
        assert "handed over" in fleet.worker_log()
        _no_containers(docker_client, tmp_path, "long")
    finally:
        stop_worker(second)


def test_a_stage_ending_within_the_drain_grace_finishes_where_it_runs(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    worker = _drained(fleet, "120", tmp_path)
    root = make_repo(one_stage("short", "echo started; sleep 3; echo ok > out.txt"))
    proc = submit_until_started(root, fleet, busybox_image)
    worker.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err + fleet.worker_log()
    assert "runs again" not in out
    assert (root / "out.txt").read_text() == "ok\n"
    assert worker.wait(60) == 0
    assert fleet.jobs_run() == 1
    _no_containers(docker_client, tmp_path, "short")


def test_a_drained_worker_takes_no_new_job(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    import redis
    from rq import Queue

    worker = _drained(fleet, "120", tmp_path)
    held = "echo started; until [ -e go ]; do sleep 0.05; done; echo ok > out.txt"
    root = make_repo(one_stage("held", held))
    proc = submit_until_started(root, fleet, busybox_image)
    worker.send_signal(signal.SIGTERM)
    queue = Queue("default", connection=redis.Redis.from_url(fleet.redis_url))
    other = make_repo(one_stage("other", "echo other > out.txt"), "other")
    env = {**os.environ, **GIT_ENV, **fleet.env, "EXECUTOR_IMAGE": busybox_image}
    later = subprocess.Popen(
        [sys.executable, "-m", "executor", "submit"], cwd=other, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while queue.count == 0:  # the second job waits while the first stage still runs
            assert later.poll() is None and time.monotonic() < deadline, fleet.worker_log()
            time.sleep(0.05)
        for workspace in (tmp_path / "worker-home").glob("jobs/*/ws"):
            (workspace / "go").write_text("")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err + fleet.worker_log()
        assert worker.wait(60) == 0
        assert queue.count == 1  # left for another worker
        assert not (other / "out.txt").exists()
    finally:
        later.kill()
        later.wait()


@pytest.mark.parametrize("raw", ["later", "-5", "inf"])
def test_a_bad_drain_grace_is_a_config_error(raw: str) -> None:
    env = {"EXECUTOR_STORE": "s3://b/p", "EXECUTOR_WORKER_DRAIN_GRACE": raw}
    with pytest.raises(ConfigError, match="--drain-grace"):
        WorkerConfig.from_env(env)
