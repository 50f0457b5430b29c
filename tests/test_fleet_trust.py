"""The fleet attacked as a Redis writer or a stage would: a real `executor-worker` (RQ),
redis-server, moto's S3 server and the Docker engine. Each attack must leave nothing run on
the worker host, nothing forged in the store and the worker's cache as it was."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fleet import (
    Fleet,
    fleet_env,
    one_stage,
    start_worker,
    stop_worker,
    submit,
    submit_until_started,
    work_horses,
)
from tests.fixtures.repos import run_cli
from tests.fixtures.s3_server import Bucket

SECRET = f"worker-secret-{uuid.uuid4().hex}"  # in the worker's environment only
MARK_ENV = "EXECUTOR_TEST_MARK_DIR"
CEILINGS = {
    "EXECUTOR_WORKER_MAX_MEMORY": "512m",
    "EXECUTOR_WORKER_LOG_BYTES": "4096",
    "EXECUTOR_WORKER_TMP_SIZE": "64m",
}


def hostile_callback(job: Any, connection: Any, *rest: Any) -> None:
    """Imported and called by a worker that runs callbacks: leaves a mark."""
    Path(os.environ[MARK_ENV], f"callback-{job.id}").write_text("ran")


class _Reduce:
    """Pickled, it runs `touch` when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture()
def hostile_fleet(
    redis_url: str, s3_bucket: Bucket, busybox_image: str, tmp_path: Path
) -> Iterator[Fleet]:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = fleet_env(redis_url, s3_bucket.url("fleet"), s3_bucket.endpoint)
    log = tmp_path / "worker.log"
    worker_env = {**env, "EXECUTOR_TEST_SECRET": SECRET, MARK_ENV: str(marks), **CEILINGS}
    worker = start_worker(worker_env, tmp_path / "worker-home", log)
    fleet = Fleet(redis_url, s3_bucket.url("fleet"), env, worker, log)
    try:
        fleet.wait_for_workers(1)
        yield fleet
    finally:
        for proc in {worker, fleet.worker}:
            stop_worker(proc)


def _queue(fleet: Fleet, serializer: Any = None) -> Any:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    client = redis.Redis.from_url(fleet.redis_url)
    return Queue("default", connection=client, serializer=serializer or JSONSerializer)


def _ended(job: Any, fleet: Fleet | None = None) -> str:
    deadline = time.monotonic() + 120
    while (status := job.get_status(refresh=True).value) not in ("finished", "failed"):
        assert time.monotonic() < deadline, fleet.worker_log() if fleet else "it did not end"
        time.sleep(0.1)
    return str(status)


def _everything_in(redis_url: str) -> bytes:
    """Every key and value of the test's Redis database, as one blob."""
    import redis

    client = redis.Redis.from_url(redis_url)
    blob = []
    for key in client.scan_iter("*"):
        kind = client.type(key).decode()
        blob.append(key)
        if kind == "string":
            blob.append(client.get(key) or b"")
        elif kind == "hash":
            blob += [b"%s=%s" % kv for kv in client.hgetall(key).items()]
        elif kind == "list":
            blob += client.lrange(key, 0, -1)
        elif kind == "set":
            blob += list(client.smembers(key))
        elif kind == "zset":
            blob += client.zrange(key, 0, -1)
        elif kind == "stream":
            blob += [repr(e).encode() for e in client.xrange(key)]
    return b"\n".join(blob)


def test_a_worker_runs_nothing_but_stages_and_goes_on_serving(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    from rq import Callback
    from rq.serializers import DefaultSerializer

    fleet = hostile_fleet
    marks = tmp_path / "marks"
    queue = _queue(fleet)
    hook = Callback(f"{__name__}.hostile_callback")
    hostile = [
        queue.enqueue("os.system", f"touch {marks / 'system'}"),
        queue.enqueue("builtins.exec", f"open({str(marks / 'exec')!r}, 'w').close()"),
        queue.enqueue("os.environ.copy"),
        queue.enqueue("subprocess.run", ["touch", str(marks / "run")]),
        # The entry point, but with a callback: any of them would import and call it.
        *(
            queue.enqueue("worker.fleet.run_job", {}, fleet.store_url, **{when: hook})
            for when in ("on_failure", "on_success", "on_stopped")
        ),
        # A job written with pickle: never unpickled by the worker.
        _queue(fleet, DefaultSerializer).enqueue(
            "worker.fleet.run_job", _Reduce(str(marks / "pickle")), fleet.store_url
        ),
    ]
    for job in hostile:
        assert _ended(job) == "failed", job.id
    assert sorted(p.name for p in marks.iterdir()) == []
    assert SECRET.encode() not in _everything_in(fleet.redis_url)
    assert "refused job" in fleet.worker_log()
    # The worker is still there, and still runs stages.
    root = make_repo(one_stage("s", "cat in.txt > out.txt"))
    done = submit(root, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert (root / "out.txt").read_text() == "x\n"


def test_a_job_rq_cannot_read_is_skipped_and_the_worker_goes_on(
    hostile_fleet: Fleet, tmp_path: Path
) -> None:
    """A job id RQ rejects (here one naming a path) made RQ's worker quit: every worker of
    the fleet stopped by one write to Redis."""
    import redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    client = redis.Redis.from_url(hostile_fleet.redis_url)
    job = Job.create("worker.fleet.run_job", args=({}, hostile_fleet.store_url),
                     connection=client, serializer=JSONSerializer, id="ok")  # fmt: skip
    job._id = "../../escaped"
    job.origin = "default"
    job.save()
    client.rpush("rq:queue:default", job.id)
    client.sadd("rq:queues", "rq:queue:default")
    after = _queue(hostile_fleet).enqueue("os.system", "true")
    assert _ended(after, hostile_fleet) == "failed"
    assert hostile_fleet.worker.poll() is None, hostile_fleet.worker_log()
    assert "refused job '../../escaped': it cannot be read" in hostile_fleet.worker_log()
    assert not list(tmp_path.glob("escaped*"))


def _spec(image: str, **changes: Any) -> dict[str, Any]:
    from executor.jobspec import JobSpec, OutRequest

    x = hashlib.md5(b"x\n").hexdigest()
    honest = JobSpec(
        address="build", dvc_stage="build", cmd="cat in.txt > out.txt",
        lines=("cat in.txt > out.txt",), image=image, wdir=".",
        deps=({"path": "in.txt", "hash": "md5", "md5": x, "size": 2},),
        params={}, outs=(OutRequest("out.txt", "out.txt", committed=True),), cacheable=True,
        inputs=(),
    ).to_dict()  # fmt: skip
    honest["inputs"] = [{"path": "in.txt", "md5": x}]
    return {**honest, **changes}


@pytest.mark.parametrize(
    "forgery",
    [
        # The output hashed is another file than the one the entry names.
        {"repo_path": "evil.txt", "persist": True},
        # The output is the stage's own, but its bytes were given, not made (persist).
        {"repo_path": "out.txt", "persist": True},
    ],
)
def test_crafted_jobs_cannot_make_a_fresh_clone_check_out_forged_bytes(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str,
    s3_bucket: Bucket, forgery: dict[str, Any],
) -> None:  # fmt: skip
    fleet = hostile_fleet
    queue = _queue(fleet)
    evil = hashlib.md5(b"EVIL\n").hexdigest()
    # Job 1: any stage that puts the forged bytes into the store as its output.
    plant = _spec(busybox_image, cmd="echo EVIL > planted.txt", lines=["echo EVIL > planted.txt"],
                  outs=[{"path": "planted.txt", "repo_path": "planted.txt"}], deps=[],
                  inputs=[])  # fmt: skip
    job = queue.enqueue("worker.fleet.run_job", plant, fleet.store_url)
    assert _ended(job, fleet) == "finished"
    assert job.return_value()["ok"], job.return_value()
    assert s3_bucket.keys(f"fleet/files/md5/{evil[:2]}/{evil[2:]}")
    # The victim's input is in the store (any submission of it put it there).
    from executor.settings import Settings
    from executor.store.open import open_store

    store = open_store(fleet.store_url, Settings(s3_endpoint_url=s3_bucket.endpoint))
    store.put_bytes(hashlib.md5(b"x\n").hexdigest(), b"x\n")
    # Job 2: the victim's stage, recorded with those bytes as its output.
    out = {"path": "out.txt", "committed": True, **forgery}
    inputs = [{"path": "in.txt", "md5": hashlib.md5(b"x\n").hexdigest()},
              {"path": forgery["repo_path"], "md5": evil}]  # fmt: skip
    forged = _spec(busybox_image, outs=[out], inputs=inputs)
    job = queue.enqueue("worker.fleet.run_job", forged, fleet.store_url)
    _ended(job)
    refused = job.return_value()
    assert not refused["ok"] or refused["result"]["run_key"] is None, refused
    victim = make_repo(one_stage("build", "cat in.txt > out.txt"))
    done = submit(victim, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert "is cached" not in done.stdout
    assert (victim / "out.txt").read_text() == "x\n"
    assert evil not in (victim / "dvc.lock").read_text()


def test_a_stage_cannot_change_its_inputs_on_the_worker(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str
) -> None:
    """Inputs are read-only mounts: no chmod (EROFS), no link out of them (EXDEV), no write;
    the next job on the same content reads the genuine bytes."""
    cmd = (
        "ln in.txt linked.txt 2>&1; chmod +w in.txt 2>&1; echo evil > in.txt; cat in.txt > out.txt"
    )
    root = make_repo(one_stage("attack", cmd))
    done = submit(root, hostile_fleet, busybox_image)
    assert "Invalid cross-device link" in done.stdout, done.stdout + done.stderr
    assert "Read-only file system" in done.stdout, done.stdout
    assert done.returncode == 0, done.stderr
    assert (root / "out.txt").read_text() == "x\n"
    other = make_repo(one_stage("read", "cat in.txt > out.txt"))
    done = submit(other, hostile_fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert (other / "out.txt").read_text() == "x\n"


def test_a_stage_killed_mid_run_leaves_no_changed_input_in_the_workers_cache(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    fleet = hostile_fleet
    cmd = "chmod +w in.txt; echo evil > in.txt; echo started; sleep 300"
    root = make_repo(one_stage("attack", cmd))
    proc = submit_until_started(root, fleet, busybox_image)
    horses = work_horses(fleet.worker.pid)
    for pid in [fleet.worker.pid, *horses]:
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.communicate()
    fleet.worker.wait()
    home = tmp_path / "worker-home"
    worker_env = {**fleet.env, MARK_ENV: str(tmp_path / "marks"), **CEILINGS}
    fleet.worker = start_worker(worker_env, home, tmp_path / "second.log")
    fleet.wait_for_workers(1)
    other = make_repo(one_stage("read", "cat in.txt > out.txt"))
    done = submit(other, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + (tmp_path / "second.log").read_text()
    assert (other / "out.txt").read_text() == "x\n"


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ("{memory: 1g}", "asks for memory 1g, over this worker's ceiling of 512m; lower "
         "meta.executor.memory or start workers with --max-memory"),
        ("{network: true}", "asks for network true, over this worker's ceiling of no network"),
        ("{timeout: 200h}", "over this worker's ceiling of 168h"),
    ],
)  # fmt: skip
def test_a_job_over_a_workers_ceiling_is_refused_before_anything_runs(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str, meta: str,
    words: str,
) -> None:  # fmt: skip
    files = {
        "dvc.yaml": "stages:\n  big:\n    cmd: echo ran; cat in.txt > out.txt\n"
        f"    deps: [in.txt]\n    outs: [out.txt]\n    meta: {{executor: {meta}}}\n",
        "in.txt": "x\n",
    }
    root = make_repo(files)
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "ran" not in done.stdout.split()
    assert not (root / "out.txt").exists()


def test_a_job_within_the_ceilings_gets_them_as_limits(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str
) -> None:
    """No memory asked: the worker's ceiling is its limit (cgroup v2 or v1); /tmp is the
    worker's size."""
    cmd = (
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep ' /tmp ' /proc/mounts;"
        " cp in.txt out.txt"
    )
    root = make_repo(one_stage("limited", cmd))
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert str(512 << 20) in done.stdout, done.stdout
    assert "size=65536k" in done.stdout, done.stdout


def test_a_jobs_log_in_redis_has_a_byte_budget(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str
) -> None:
    """Past the worker's budget (4096 bytes here) the stream says so once; the stage runs to
    its end, whose last lines still come with its failure."""
    root = make_repo(one_stage("chatty", "seq 1 20000 | sed s/^/line-/; echo the-end; exit 1"))
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("of this stage's log is not relayed") == 1, done.stdout
    assert "--log-bytes" in done.stdout
    assert "line-1\n" in done.stdout and "line-19999" not in done.stdout
    assert "| the-end" in done.stderr, done.stderr
    relayed = [line for line in done.stdout.splitlines() if line.startswith("[chatty] line-")]
    assert 4096 - 200 < sum(len(line) - len("[chatty] ") + 1 for line in relayed) <= 4096


@pytest.mark.parametrize(
    "url",
    ["redis://:pa55-word@127.0.0.1:9/0", "redis://user:pa55-word@127.0.0.1:9/0",
     "rediss://default:pa55-word@127.0.0.1:9/0"],
)  # fmt: skip
def test_a_redis_password_is_never_printed(
    make_repo: Callable[..., Path], tmp_path: Path, url: str
) -> None:
    root = make_repo(one_stage("s", "cp in.txt out.txt"))
    env = {"EXECUTOR_REDIS_URL": url, "EXECUTOR_STORE": str(tmp_path / "store"),
           "EXECUTOR_IMAGE": "busybox"}  # fmt: skip
    for argv in (["submit"], ["submit", "--dry"]):
        done = run_cli([sys.executable, "-m", "executor", *argv], root, env)
        assert done.returncode == 3, done.stderr
        assert "cannot reach Redis at" in done.stderr and ":***@127.0.0.1:9/0" in done.stderr
        assert "pa55-word" not in done.stdout + done.stderr
    worker = run_cli(
        [sys.executable, "-m", "worker", "--redis", url, "--store", str(tmp_path / "store"),
         "--dir", str(tmp_path / "home"), "--burst"], root, {},
    )  # fmt: skip
    assert worker.returncode == 3, worker.stderr
    assert ":***@127.0.0.1:9/0" in worker.stderr
    assert "pa55-word" not in worker.stdout + worker.stderr


def test_a_root_workers_stages_run_as_nobody_who_owns_no_cache_file(
    make_repo: Callable[..., Path], hostile_fleet: Fleet, busybox_image: str
) -> None:
    root = make_repo(one_stage("who", "id -u > out.txt; stat -c %u in.txt"))
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    expected = "65534" if os.getuid() == 0 else str(os.getuid())
    assert (root / "out.txt").read_text() == f"{expected}\n"
    assert f"[who] {os.getuid()}" in done.stdout  # the input is the worker's, not the stage's
