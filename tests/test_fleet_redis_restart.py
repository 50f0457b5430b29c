"""Redis restarted in the middle of a run (killed, then started again with its data, as a
fleet's Redis keeps it): the attached submit and the worker reconnect with backoff, the run
completes, and every stage runs once. Real redis-server, moto_server, `executor-worker`
and the Docker engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.docker_env import containers_under
from tests.fixtures.fleet import Fleet, fleet_env, start_worker, stop_worker, submit_until_started
from tests.fixtures.redis_server import PersistentRedis
from tests.fixtures.s3_server import Bucket

PIPELINE = {
    "dvc.yaml": """\
stages:
  first:
    cmd: echo started; until [ -e go ]; do sleep 0.05; done; cat in.txt > mid.txt
    deps: [in.txt]
    outs: [mid.txt]
  second:
    cmd: cat mid.txt mid.txt > out.txt
    deps: [mid.txt]
    outs: [out.txt]
""",
    "in.txt": "x\n",
}


@pytest.fixture()
def restart_fleet(
    persistent_redis: PersistentRedis, s3_bucket: Bucket, tmp_path: Path
) -> Iterator[Fleet]:
    """A worker on a Redis that keeps its data across a restart."""
    env = fleet_env(persistent_redis.url, s3_bucket.url("fleet"), s3_bucket.endpoint)
    log, home = tmp_path / "worker.log", tmp_path / "worker-home"
    fleet = Fleet(
        persistent_redis.url, env["EXECUTOR_STORE"], env, start_worker(env, home, log), log
    )
    try:
        fleet.wait_for_workers(1)
        yield fleet
    finally:
        stop_worker(fleet.worker)


def _stage_ends_while_redis_is_away(
    redis: PersistentRedis, fleet: Fleet, home: Path, docker_client: Any
) -> None:
    """Kill Redis, let the running stage `first` end, then start Redis again."""
    redis.kill()
    [workspace] = home.glob("jobs/*/ws")
    (workspace / "go").write_text("")
    deadline = time.monotonic() + 60
    while containers_under(docker_client, home, stage="first", running=True):
        assert time.monotonic() < deadline, fleet.worker_log()
        time.sleep(0.05)
    redis.start()


def test_an_attached_submit_and_its_worker_ride_out_a_redis_restart(
    make_repo: Callable[..., Path],
    persistent_redis: PersistentRedis,
    restart_fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    fleet = restart_fleet
    root = make_repo(PIPELINE)
    proc = submit_until_started(root, fleet, busybox_image)
    _stage_ends_while_redis_is_away(
        persistent_redis, fleet, tmp_path / "worker-home", docker_client
    )
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err + fleet.worker_log()
    assert (root / "out.txt").read_text() == "x\nx\n"
    assert "runs again" not in out  # nothing was taken for lost
    assert fleet.jobs_run() == 2  # each stage once
    assert fleet.worker.poll() is None  # the worker rode it out too


def test_a_detached_run_rides_out_a_redis_restart(
    make_repo: Callable[..., Path],
    persistent_redis: PersistentRedis,
    restart_fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    from tests.test_fleet_detached import cli, detach, ended, wait_for

    fleet = restart_fleet
    root = make_repo(PIPELINE)
    run_id = detach(root, fleet, busybox_image)
    wait_for(root, fleet, run_id, lambda d: d["stages"]["first"]["state"] == "running")
    _stage_ends_while_redis_is_away(
        persistent_redis, fleet, tmp_path / "worker-home", docker_client
    )
    doc = wait_for(root, fleet, run_id, ended, timeout=240)
    assert doc["run"]["state"] == "succeeded", doc
    assert [s["attempts"] for s in doc["stages"].values()] == [1, 1]  # each stage once
    assert cli(root, fleet, "fetch", run_id).returncode == 0
    assert (root / "out.txt").read_text() == "x\nx\n"
    assert fleet.worker.poll() is None
