"""`executor workers` against a real fleet: redis-server, moto_server, an `executor-worker`
process and the Docker engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.fleet import Fleet, one_stage, stop_worker, submit_until_started
from tests.fixtures.repos import GIT_ENV


def _workers(
    fleet: Fleet, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor", "workers", *args],
        env={**os.environ, **GIT_ENV, **(env if env is not None else fleet.env)},
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip


def _listed(fleet: Fleet) -> list[dict[str, Any]]:
    done = _workers(fleet, "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def test_workers_lists_an_idle_worker_then_the_stage_it_runs(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    [idle] = _listed(fleet)
    assert idle["state"] == "idle" and idle["stage"] is None
    assert idle["queues"] == ["default"]
    assert idle["cache_limit"] == 10 * 1024**3 and idle["cache_bytes"] == 0
    assert 0 <= idle["heartbeat_age"] < 60
    root = make_repo(one_stage("long", "echo started; sleep 30; echo ok > out.txt"))
    proc = submit_until_started(root, fleet, busybox_image)
    try:
        [busy] = _listed(fleet)
        assert busy["state"] == "busy", busy
        assert busy["stage"] == "long" and busy["job_id"].startswith("executor-")
        assert busy["running_for"] is not None and busy["running_for"] >= 0
        plain = _workers(fleet)
        assert plain.returncode == 0
        header, row = plain.stdout.splitlines()
        assert header.split("\t")[:5] == ["worker", "host", "queues", "state", "stage"]
        assert row.split("\t")[3:5] == ["busy", "long"]
    finally:
        proc.kill()
        proc.wait()
        stop_worker(fleet.worker)  # warm: the stage goes on to its end


def test_a_worker_name_a_redis_writer_chose_reaches_the_terminal_made_visible(
    fleet: Fleet,
) -> None:
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    name = "evil\x1b]0;owned\x07\x1b[2J"
    key = f"rq:worker:{name}"
    now = "2026-01-01T00:00:00.000000Z"
    client.hset(key, mapping={"birth": now, "last_heartbeat": now, "queues": "default",
                              "state": "idle", "hostname": "h\x1b[31m", "pid": "1"})  # fmt: skip
    client.sadd("rq:workers", key)
    client.sadd("rq:workers:default", key)
    deadline = time.monotonic() + 60
    while True:
        done = _workers(fleet)
        assert done.returncode == 0, done.stderr
        if "evil" in done.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "evil" in done.stdout
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b" in done.stdout


def test_workers_without_a_fleet_is_a_one_line_error(fleet: Fleet) -> None:
    done = _workers(fleet, env={"EXECUTOR_REDIS_URL": ""})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--redis" in done.stderr
    unreachable = _workers(fleet, "--redis", "redis://127.0.0.1:9/0", env={})
    assert unreachable.returncode == 3
    assert "cannot reach Redis" in unreachable.stderr
