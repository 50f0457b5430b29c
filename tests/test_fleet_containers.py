"""The fleet as deployed: three executor-worker containers built from docker/, Redis (AOF on)
and the S3 server (s3s-fs) on a private Docker network, `executor submit` from the host; then
each fault with work in flight: a killed worker, a worker cut off, Redis restarted, workers
added, a worker stopped, the store stopped. Every time the pipeline completes as DVC would
have it, each stage's command runs to its end once, and nothing is left behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.container_fleet import ContainerFleet, wait_until
from tests.fixtures.fleet import outputs
from tests.fixtures.repos import GIT_ENV

pytestmark = pytest.mark.timeout(600)

FAN = 6


def fan_pipeline(token: str, sleep: int = 3, size: int = 1000) -> dict[str, str]:
    """prepare -> work@1..FAN (each `sleep` s, `size` bytes out) -> merge."""
    items = ", ".join(str(i) for i in range(1, FAN + 1))
    return {
        "dvc.yaml": f"""\
stages:
  prepare:
    cmd: cat in.txt in.txt > prep.txt
    deps: [in.txt]
    outs: [prep.txt]
  work:
    foreach: [{items}]
    do:
      cmd: >-
        sleep {sleep} && (cat prep.txt; yes ${{item}} | head -c {size}) > part-${{item}}.txt
      deps: [prep.txt]
      outs: ["part-${{item}}.txt"]
  merge:
    cmd: cat part-*.txt | wc -c > total.txt
    deps: [{", ".join(f"part-{i}.txt" for i in range(1, FAN + 1))}]
    outs: [total.txt]
""",
        "in.txt": f"{token}\n",
    }


def expected(token: str, size: int = 1000) -> dict[str, str]:
    prep = f"{token}\n" * 2
    parts = {f"part-{i}.txt": prep + (f"{i}\n" * size)[:size] for i in range(1, FAN + 1)}
    total = sum(len(p) for p in parts.values())
    return {"prep.txt": prep, **parts, "total.txt": f"{total}\n"}


def start_submit(root: Path, fleet: ContainerFleet) -> subprocess.Popen[str]:
    env = {**os.environ, **GIT_ENV, **fleet.env}
    if os.getuid() == 0:
        env["EXECUTOR_STAGE_USER"] = "65534:65534"
    return subprocess.Popen(
        [sys.executable, "-m", "executor", "submit", "-j", "8"], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], fleet: ContainerFleet, timeout: float = 400) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, out + err + fleet.logs()
    return out


def check_clean(fleet: ContainerFleet, root: Path, token: str, dvc_cli: Any, since: int) -> None:
    """The run's result is right, each stage ran to its end once, and nothing is left."""
    produced = {k: v for k, v in outputs(root).items() if k in expected(token)}
    assert produced == expected(token)
    status = dvc_cli(root, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    counts = fleet.completions(since)
    stages = ["prepare", *(f"work@{i}" for i in range(1, FAN + 1)), "merge"]
    assert counts == dict.fromkeys(stages, 1), counts
    wait_until("the stage containers to be removed", lambda: not fleet.stage_containers(), 90)
    assert fleet.leases() == []
    check_store(fleet)


def check_store(fleet: ContainerFleet) -> None:
    """Every object in the store is whole: its content hashes to its name."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=fleet.env["EXECUTOR_S3_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id="executor", aws_secret_access_key=fleet.secret,
    )  # fmt: skip
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="executor", Prefix="fleet/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    objects = [k for k in keys if "/files/md5/" in k]
    assert objects, keys
    for key in objects:
        body = s3.get_object(Bucket="executor", Key=key)["Body"].read()
        name = "".join(key.split("/files/md5/")[1].split("/")).removesuffix(".dir")
        assert hashlib.md5(body).hexdigest() == name, key


def running_stage(fleet: ContainerFleet, prefix: str) -> Any:
    """A running stage container whose stage starts with `prefix`, once there is one."""
    found: list[Any] = []

    def look() -> bool:
        found[:] = [
            c
            for c in fleet.stage_containers()
            if c.status == "running" and c.labels.get("executor.stage", "").startswith(prefix)
        ]
        return bool(found)

    wait_until(f"a running {prefix} stage", look, 180)
    return found[0]


def worker_of(fleet: ContainerFleet, stage_container: Any) -> Any:
    owner = stage_container.labels["executor.container"]
    return next(w for w in fleet.workers if w.id == owner)


def test_three_worker_containers_share_a_fan_out_and_match_dvc_repro(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    token = "baseline"
    ours = make_repo(fan_pipeline(token), "ours")
    theirs = make_repo(fan_pipeline(token), "theirs")
    finish(start_submit(ours, fleet), fleet)
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)
    assert all(fleet.ran_jobs(w) >= 1 for w in fleet.workers), fleet.logs()
    check_clean(fleet, ours, token, dvc_cli, since)


def test_a_killed_worker_containers_stage_runs_again_elsewhere(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    root = make_repo(fan_pipeline("killed", sleep=8), "killed")
    proc = start_submit(root, fleet)
    victim = worker_of(fleet, running_stage(fleet, "work@"))
    victim.kill()
    finish(proc, fleet)
    check_clean(fleet, root, "killed", dvc_cli, since)
    victim.remove(force=True)
    fleet.workers.remove(victim)
    fleet.add_worker()
    fleet.wait_for_workers(3)


def test_a_worker_cut_off_for_30_seconds_carries_on(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    root = make_repo(fan_pipeline("cut-off", sleep=5), "cut")
    proc = start_submit(root, fleet)
    victim = worker_of(fleet, running_stage(fleet, "work@"))
    fleet.network.disconnect(victim)
    time.sleep(30)  # the fault itself: thirty seconds without the network
    fleet.network.connect(victim)
    finish(proc, fleet)
    check_clean(fleet, root, "cut-off", dvc_cli, since)


def test_redis_restarted_mid_run_loses_nothing(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    root = make_repo(fan_pipeline("redis-restart", sleep=4), "redis")
    proc = start_submit(root, fleet)
    running_stage(fleet, "work@")
    fleet.redis.restart(timeout=10)
    finish(proc, fleet)
    check_clean(fleet, root, "redis-restart", dvc_cli, since)
    fleet.wait_for_workers(3)


def test_workers_added_while_jobs_are_queued_take_them(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    for extra in fleet.live_workers()[1:]:
        extra.stop(timeout=30)  # idle: a warm shutdown at once
        extra.remove(force=True)
        fleet.workers.remove(extra)
    root = make_repo(fan_pipeline("scaled", sleep=3), "scaled")
    proc = start_submit(root, fleet)
    running_stage(fleet, "work@")  # one worker busy, five jobs queued
    added = [fleet.add_worker(), fleet.add_worker()]
    finish(proc, fleet)
    assert all(fleet.ran_jobs(w) >= 1 for w in added), fleet.logs()
    check_clean(fleet, root, "scaled", dvc_cli, since)


def test_a_stopped_workers_long_stage_is_handed_over(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    root = make_repo(fan_pipeline("stopped", sleep=12), "stopped")
    proc = start_submit(root, fleet)
    first = running_stage(fleet, "work@")
    victim = worker_of(fleet, first)
    victim.stop(timeout=30)  # SIGTERM: drain grace 2 s, then the stage is handed over
    finish(proc, fleet)
    check_clean(fleet, root, "stopped", dvc_cli, since)
    stage = first.labels["executor.stage"]
    done = [
        e for e in list(fleet.exits)[since:]
        if e.get("executor.stage") == stage and e.get("exitCode") == "0"
    ]  # fmt: skip
    assert [e["executor.container"] for e in done] != [victim.id]
    victim.remove(force=True)
    fleet.workers.remove(victim)
    fleet.add_worker()
    fleet.wait_for_workers(3)


def test_the_store_stopped_for_20_seconds_during_pushes(
    container_fleet: ContainerFleet, make_repo: Callable[..., Path], dvc_cli: Any
) -> None:
    fleet = container_fleet
    since = len(fleet.exits)
    size = 20_000_000
    root = make_repo(fan_pipeline("store-down", sleep=2, size=size), "store")
    proc = start_submit(root, fleet)
    wait_until(
        "a work stage's end (its outputs being pushed)",
        lambda: any(
            e.get("executor.stage", "").startswith("work@") for e in list(fleet.exits)[since:]
        ),
        180,
    )
    fleet.store.stop(timeout=5)
    time.sleep(20)  # the fault itself: twenty seconds without the store
    fleet.store.start()
    finish(proc, fleet)
    produced = outputs(root)
    assert produced["total.txt"] == expected("store-down", size)["total.txt"]
    check_clean_big(fleet, root, dvc_cli, since)


def check_clean_big(fleet: ContainerFleet, root: Path, dvc_cli: Any, since: int) -> None:
    status = dvc_cli(root, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    counts = fleet.completions(since)
    assert counts == dict.fromkeys(
        ["prepare", *(f"work@{i}" for i in range(1, FAN + 1)), "merge"], 1
    ), counts
    wait_until("the stage containers to be removed", lambda: not fleet.stage_containers(), 90)
    assert fleet.leases() == []
    check_store(fleet)


def _refused(fleet: ContainerFleet, **kw: Any) -> str:
    """Start a worker container that must refuse to start; its log."""
    worker = fleet.add_worker(kw.pop("env", None), **kw)
    try:
        assert worker.wait(timeout=120)["StatusCode"] != 0
        return str(worker.logs().decode(errors="replace"))
    finally:
        worker.remove(force=True)
        fleet.workers.remove(worker)


def test_a_worker_whose_folder_the_engine_sees_elsewhere_refuses_to_start(
    container_fleet: ContainerFleet, tmp_path: Path
) -> None:
    wrong = tmp_path / "not-the-workers-folder"
    wrong.mkdir()
    log = _refused(container_fleet, env={"EXECUTOR_WORKER_HOST_DIR": str(wrong)})
    assert "is not at" in log and "EXECUTOR_WORKER_HOST_DIR" in log, log
    assert not list(wrong.iterdir())  # nothing was written where it is not


def test_a_worker_whose_folder_is_not_on_the_engines_host_refuses_to_start(
    container_fleet: ContainerFleet,
) -> None:
    log = _refused(container_fleet, tmpfs={"/var/lib/executor-worker": ""}, volumes=None)
    assert "EXECUTOR_WORKER_HOST_DIR" in log and "mount a host folder" in log, log
