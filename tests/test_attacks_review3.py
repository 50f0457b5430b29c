"""Attacks on the fleet's drain, lost-job sweep, GPU routing, `executor workers` listing and
Redis reconnection, by a Redis writer (not trusted: docs/security.md) and by failures (a
Redis restart). Real redis-server, moto_server, `executor-worker` processes and Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from executor.fleet.keys import JOB_FUNCTION, alive_key
from tests.fixtures.fleet import Fleet
from tests.fixtures.repos import GIT_ENV, run_cli
from worker.lostjobs import expire_lost_jobs, unseen_key


def _burst_worker(home: Path, redis_url: str, store: Path) -> subprocess.CompletedProcess[str]:
    """A worker without GPUs, on the default queue, until it is empty."""
    env = {
        "EXECUTOR_REDIS_URL": redis_url,
        "EXECUTOR_STORE": str(store),
        "EXECUTOR_WORKER_DIR": str(home),
    }
    return run_cli([sys.executable, "-m", "worker", "--burst"], home.parent, env, 120)


# --- GPU routing: a crafted job must not stop a worker without GPUs ------------------------


def test_crafted_jobs_do_not_stop_a_worker_without_gpus(redis_url: str, tmp_path: Path) -> None:
    """Before a job is run, a worker without GPUs reads its spec to see whether it asks for
    GPUs. That read ran in RQ's main loop, where any error stops the worker ("found an
    unhandled exception, quitting"): one job whose data is not JSON, whose arguments are a
    mapping, or whose GPU count is too large for a float stopped every such worker that took
    it. Each is refused and failed like any other garbage; the worker serves on."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    store = tmp_path / "store"
    store.mkdir()
    client = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=client, serializer=JSONSerializer)
    client.hset("rq:job:executor-notjson", mapping={"data": b"\x00\x01", "status": "queued"})
    client.rpush("rq:queue:default", "executor-notjson")
    crafted = {  # job id -> its data (RQ's JSON serializer: func, instance, args, kwargs)
        "executor-mapping": [JOB_FUNCTION, None, {"0": {"executor_meta": {"gpus": 1}}}, {}],
        "executor-number": [JOB_FUNCTION, None, 5, {}],
        "executor-huge": [JOB_FUNCTION, None, [{"executor_meta": {"gpus": 10**400}}, "x"], {}],
        "executor-hugepids": [JOB_FUNCTION, None, [{"executor_meta": {"pids": 10**400}}, "x"], {}],
    }
    for job_id, data in crafted.items():
        client.hset(f"rq:job:{job_id}", mapping={"data": json.dumps(data), "status": "queued"})
        client.rpush("rq:queue:default", job_id)
    queue.enqueue("os.system", f"touch {store}/PWNED", job_id="executor-" + "a" * 32)
    done = _burst_worker(tmp_path / "home", redis_url, store)
    assert done.returncode == 0, done.stderr
    assert "unhandled exception, quitting" not in done.stderr, done.stderr[-3000:]
    assert "done, quitting" in done.stderr  # it served the queue to its end
    assert client.llen("rq:queue:default") == 0
    assert client.llen("rq:queue:gpu") == 0  # garbage is refused here, never passed on
    assert not (store / "PWNED").exists()


# --- the lost-job sweep: crafted registry entries and marks --------------------------------


def _lost_job_due(client: Any, registry: Any, job_id: str) -> None:
    """A started job whose worker vanished, already marked unseen a while ago (Redis time)."""
    now = int(client.time()[0])
    client.zadd(registry.key, {f"{job_id}:exec1": now + 3600})
    client.set(unseen_key(job_id), now - 3600)


def test_crafted_entries_do_not_stop_the_lost_job_sweep(redis_url: str) -> None:
    """The sweep parsed every member of RQ's started registry and every unseen mark with
    no guard: one member RQ cannot parse ('a:b:c', bytes that are not UTF-8) or one mark
    that is not a number made the whole sweep of that queue fail at every pass, so no lost
    job there was ever finished off early. Such entries are skipped; the lost job is not."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    client = redis.Redis.from_url(redis_url)
    registry = Queue("default", connection=client, serializer=JSONSerializer)
    registry = registry.started_job_registry
    now = int(client.time()[0])
    client.zadd(registry.key, {"a:b:c": now + 3600, b"\xff\xfe:x": now + 3600})
    client.zadd(registry.key, {"executor-garbagemark:exec1": now + 3600})
    client.set(unseen_key("executor-garbagemark"), "not a number")
    client.zadd(registry.key, {"../../etc:exec1": now + 3600})
    _lost_job_due(client, registry, "executor-lost")
    lost = expire_lost_jobs(registry, client)
    assert lost == ["executor-lost"]
    assert client.zscore(registry.key, "executor-lost:exec1") == 0  # RQ's cleanup fails it
    # The garbage mark was replaced by a real one: that job is judged at a later pass.
    assert client.get(unseen_key("executor-garbagemark")).isdigit()
    assert client.zscore(registry.key, "executor-garbagemark:exec1") == now + 3600
    assert not client.exists(unseen_key("../../etc"))  # not a job id: nothing written for it


def test_the_sweep_leaves_a_live_job_alone(redis_url: str) -> None:
    """A job whose heartbeat is there is never expired, whatever mark a Redis writer left."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    client = redis.Redis.from_url(redis_url)
    registry = Queue("default", connection=client, serializer=JSONSerializer)
    registry = registry.started_job_registry
    _lost_job_due(client, registry, "executor-live")
    client.set(alive_key("executor-live"), "1", ex=60)
    assert expire_lost_jobs(registry, client) == []
    assert client.zscore(registry.key, "executor-live:exec1") != 0
    assert not client.exists(unseen_key("executor-live"))


# --- `executor workers`: what a Redis writer puts in worker records -------------------------


def _workers(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor", "workers", *args],
        env={**os.environ, **GIT_ENV, **fleet.env},
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip


def test_crafted_worker_records_do_not_break_the_listing(fleet: Fleet) -> None:
    """`executor workers` crashed with a traceback on: a cache size too large for a float
    (OverflowError) or for int() (over 4300 digits), a worker's current job whose data is
    not JSON or whose arguments are a mapping, a worker hash RQ cannot read (a pid that is
    not a number, a heartbeat that is not a date), a member of RQ's worker set that is not
    a worker key. The real worker is still listed, each garbage one skipped or shown with
    what could be read; a stage name's newline or tab cannot forge a row in the plain
    (tab-separated) listing."""
    client = redis.Redis.from_url(fleet.redis_url)
    [real] = [k.decode().removeprefix("rq:worker:") for k in client.smembers("rq:workers")]
    stamp = "2024-01-01T00:00:00.000000Z"
    base = {"queues": "default", "state": "busy", "birth": stamp, "last_heartbeat": stamp}

    def fake(name: str, **fields: str) -> None:
        client.hset(f"rq:worker:{name}", mapping={"name": name, **base, **fields})
        client.sadd("rq:workers", f"rq:worker:{name}")

    fake("huge")
    client.hset(
        "executor:worker:huge", mapping={"cache_bytes": "9" * 400, "cache_limit": "9" * 5000}
    )
    fake("notjson", current_job="executor-notjson")
    client.hset("rq:job:executor-notjson", mapping={"data": b"\x00", "status": "started"})
    fake("mapping", current_job="executor-mapping")
    client.hset("rq:job:executor-mapping", mapping={"data": '{"a": 1}', "status": "started"})
    fake("badpid", pid="not a pid")
    fake("baddate", last_heartbeat="garbage")
    client.sadd("rq:workers", "not-a-worker-key", b"rq:worker:\xff\xfe")
    fake("rows", current_job="executor-rows")
    data = [JOB_FUNCTION, None, [{"address": "a\nforged\trow\x1b[2J"}, "s3://x"], {}]
    client.hset(
        "rq:job:executor-rows",
        mapping={"data": json.dumps(data), "status": "started", "started_at": stamp},
    )

    listed = _workers(fleet, "--json")
    assert listed.returncode == 0, listed.stderr
    names = {w["name"] for w in json.loads(listed.stdout)}
    assert {real, "huge", "notjson", "mapping", "rows"} <= names
    assert names <= {real, "huge", "notjson", "mapping", "rows", "badpid", "baddate"}
    plain = _workers(fleet)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 1 + len(names)  # the header, then one line per listed worker
    assert all(len(line.split("\t")) == 8 for line in lines)
    assert "\x1b" not in plain.stdout


# --- a Redis restart longer than a heartbeat's lifetime -------------------------------------


def test_a_heartbeat_expired_by_a_redis_restart_is_not_a_lost_worker(redis_url: str) -> None:
    """Redis restarted with its data (AOF) after an outage longer than ALIVE_TTL has let
    every running job's heartbeat expire; each worker beats again only once it has
    reconnected (up to RECONNECT_CAP, then ALIVE_EVERY). The coordinator reconnecting first
    found the key missing and took the job for lost at once: it cancelled the live stage
    and ran it again (the restart commit's "each stage run once" held only for outages
    under 15 s). Here the heartbeat is gone as after such a restart and comes back within
    ALIVE_EVERY, as a reconnected worker's does: the job is followed to its end."""
    import threading

    from rq import Queue
    from rq.serializers import JSONSerializer

    from executor.errors import JobLost
    from executor.fleet.jobs import Follow
    from executor.fleet.keys import ALIVE_EVERY, ALIVE_TTL, events_key
    from executor.stageio import StageIO

    client = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=client, serializer=JSONSerializer)
    job = queue.enqueue(JOB_FUNCTION, {}, "s3://x", job_id="executor-" + "b" * 32)
    job.set_status("started")
    key = alive_key(job.id)
    logs: list[str] = []
    beating, stop = threading.Event(), threading.Event()
    beating.set()

    def worker_heartbeat() -> None:
        while not stop.is_set():
            if beating.is_set():
                client.set(key, "1", ex=ALIVE_TTL)
            stop.wait(0.5)

    beat = threading.Thread(target=worker_heartbeat, daemon=True)
    beat.start()
    outcome: list[Any] = []

    def follow() -> None:
        io = StageIO(threading.Event(), logs.append, None)
        try:
            outcome.append(Follow(client, job, "s", io).result(io.cancel, own=True, queue=queue))
        except Exception as exc:
            outcome.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        # Followed for longer than ALIVE_TTL with its heartbeat: the coordinator now looks
        # at the heartbeat every ALIVE_CHECK seconds.
        follower.join(ALIVE_TTL + 3)
        assert not outcome, outcome
        beating.clear()  # Redis comes back without the key; the worker not reconnected yet
        client.delete(key)
        follower.join(ALIVE_EVERY - 1)  # a reconnected worker beats within ALIVE_EVERY
        beating.set()
        client.set(key, "1", ex=ALIVE_TTL)
        result = {"ok": False, "failure": {"message": "the stage's own failure"}}
        client.xadd(events_key(job.id), {"t": "end", "v": json.dumps(result)})
        follower.join(30)
        assert outcome, "the follower did not end"
        [ended] = outcome
        assert not isinstance(ended, JobLost), ended
        assert "the stage's own failure" in str(ended)  # the job's own outcome
    finally:
        stop.set()
        beat.join()
