"""`executor submit` against a real fleet: redis-server, moto's S3 server over HTTP, an
`executor-worker` process (RQ) and the machine's Docker engine, with `dvc repro` as the oracle.
The cases that use the store the most (a run, the run-cache shared across teams, entries
deleted behind the fleet's back) also run on s3s-fs, a second S3 implementation."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.docker_env import containers_under
from tests.fixtures.fleet import (
    Fleet,
    one_stage,
    outputs,
    start_worker,
    stop_worker,
    submit,
    submit_until_started,
    work_horses,
)
from tests.fixtures.repos import GIT_ENV, run_cli
from tests.fixtures.s3_server import Bucket
from tests.fixtures.s3s_server import on_every_s3

PIPELINE = {
    "dvc.yaml": """\
stages:
  prepare:
    cmd: >-
      mkdir -p data/prep && cat in.txt > data/prep/a.txt
      && grep lr params.yaml > data/prep/b.txt && echo prepared
    deps: [in.txt]
    params: [lr]
    outs: [data/prep]
  train:
    cmd: >-
      cat data/prep/a.txt data/prep/b.txt | wc -c > model.txt
      && echo '{"n": 1}' > scores.json
    deps: [data/prep]
    outs: [model.txt]
    metrics: [{scores.json: {cache: false}}]
""",
    "in.txt": "some data\n",
    "params.yaml": "lr: 0.5\n",
}


@on_every_s3()
def test_submit_gives_what_dvc_repro_gives(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    ours = make_repo(PIPELINE, "ours")
    theirs = make_repo(PIPELINE, "theirs")
    done = submit(ours, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert "Running stage 'prepare':" in done.stdout
    assert "prepared" in done.stdout  # the worker's log lines come back as they are printed
    assert "> mkdir -p data/prep && cat in.txt" in done.stdout
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)
    status = dvc_cli(ours, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    assert fleet.jobs_run() == 2


@on_every_s3()
def test_objects_larger_than_a_part_travel_both_ways(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    dvc_cli: Any,
    s3_bucket: Bucket,
) -> None:
    """Over the store's 8 MiB part size: the input goes up from the submitter and the output
    from the worker as multipart uploads, and each comes down in one stream or in ranges."""
    big = os.urandom(9 * 2**20)
    files = {
        "dvc.yaml": "stages:\n  double:\n    cmd: cat big.bin big.bin > double.bin\n"
        "    deps: [big.bin]\n    outs: [double.bin]\n",
        "big.bin": big,
    }
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    done = submit(ours, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert (ours / "double.bin").read_bytes() == big + big
    for data in (big, big + big):
        digest = hashlib.md5(data).hexdigest()
        key = f"fleet/files/md5/{digest[:2]}/{digest[2:]}"
        etag = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)["ETag"]
        assert "-" in etag, etag  # S3's ETag of an object uploaded in parts: md5-of-md5s-N


@on_every_s3()
def test_a_second_team_gets_the_work_from_the_fleets_run_cache(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    first = make_repo(PIPELINE, "first")
    assert submit(first, fleet, busybox_image).returncode == 0, fleet.worker_log()
    assert fleet.jobs_run() == 2
    second = make_repo(PIPELINE, "second")  # another clone: no dvc.lock, no cache
    dry = submit(second, fleet, busybox_image, "--dry")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("is cached - skipping run") == 2, dry.stdout  # keys before bytes
    assert not (second / "dvc.lock").exists() and not (second / "model.txt").exists()
    assert not [p for p in (second / ".dvc").rglob("*") if p.is_file() and "cache" in p.parts]
    done = submit(second, fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("is cached - skipping run, checking out outputs") == 2, done.stdout
    assert fleet.jobs_run() == 2  # nothing was sent to a worker
    assert (second / "dvc.lock").read_text() == (first / "dvc.lock").read_text()
    assert outputs(second) == outputs(first)
    again = submit(second, fleet, busybox_image)
    assert "Data and pipelines are up to date." in again.stdout


def test_a_changed_input_runs_only_what_it_changes(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    ours = make_repo(PIPELINE, "ours")
    assert submit(ours, fleet, busybox_image).returncode == 0, fleet.worker_log()
    (ours / "params.yaml").write_text("lr: 0.25\n")
    done = submit(ours, fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert "Running stage 'prepare':" in done.stdout
    assert "Running stage 'train':" in done.stdout  # its input changed with the params
    theirs = make_repo({**PIPELINE, "params.yaml": "lr: 0.25\n"}, "theirs")
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)


def test_a_failing_stage_fails_the_submission_and_records_nothing(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, s3_bucket: Bucket
) -> None:
    root = make_repo(one_stage("broken", "echo about to fail; exit 3"))
    done = submit(root, fleet, busybox_image)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "ERROR: stage 'broken' failed to run: echo about to fail; exit 3, exited with 3"
        in done.stderr
    )
    assert "| about to fail" in done.stderr  # the last lines of its output, as with run
    assert not (root / "dvc.lock").exists()
    assert not (root / "out.txt").exists()
    assert [k for k in s3_bucket.keys("fleet/runs/")] == []


def test_interrupting_submit_stops_the_stage_on_the_worker(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    root = make_repo(one_stage("slow", "echo started; sleep 300", out="never.txt"))
    proc = submit_until_started(root, fleet, busybox_image)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    deadline = time.monotonic() + 60  # the worker removes it once it has stopped
    while containers_under(docker_client, tmp_path, stage="slow"):
        assert time.monotonic() < deadline, "the stage's container is still there"
        time.sleep(0.1)
    assert not (root / "dvc.lock").exists()


def test_a_worker_refuses_a_job_for_another_store(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, s3_bucket: Bucket
) -> None:
    root = make_repo(PIPELINE)
    env = {**fleet.env, "EXECUTOR_IMAGE": busybox_image, "EXECUTOR_STORE": s3_bucket.url("else")}
    done = run_cli([sys.executable, "-m", "executor", "submit"], root, env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "this worker serves the store" in done.stderr
    assert not (root / "dvc.lock").exists()


def test_submit_without_a_fleet_says_what_to_set(make_repo: Callable[..., Path]) -> None:
    root = make_repo(PIPELINE)
    env = {"EXECUTOR_REDIS_URL": "", "EXECUTOR_STORE": "/tmp/x"}
    done = run_cli([sys.executable, "-m", "executor", "submit"], root, env)
    assert done.returncode == 2
    assert "--redis" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    unreachable = {"EXECUTOR_REDIS_URL": "redis://127.0.0.1:9/0", "EXECUTOR_STORE": "/tmp/x",
                   "EXECUTOR_IMAGE": "busybox"}  # fmt: skip
    done = run_cli([sys.executable, "-m", "executor", "submit"], root, unreachable)
    assert done.returncode == 3, done.stderr
    assert "cannot reach Redis at redis://127.0.0.1:9/0" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("killed", ["worker and work horse", "work horse"])
def test_a_job_whose_worker_is_lost_runs_again(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, docker_client: Any,
    tmp_path: Path, killed: str,
) -> None:  # fmt: skip
    """Killed without a word (SIGKILL, the OOM killer): the job is noticed by its stopped
    heartbeat, or by RQ when only the work horse died, and runs again; nothing is left."""
    root = make_repo(one_stage("long", "echo started; sleep 5; echo ok > out.txt"))
    proc = submit_until_started(root, fleet, busybox_image)
    horses = work_horses(fleet.worker.pid)  # each in a process group of its own
    assert horses, "the worker has no work horse while its job runs"
    victims = horses if killed == "work horse" else [fleet.worker.pid, *horses]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    home = tmp_path / "worker-home"
    second = None
    if killed != "work horse":
        fleet.worker.wait()
        fleet.worker = second = start_worker(fleet.env, home, tmp_path / "second.log")
    out, err = proc.communicate(timeout=180)
    logs = fleet.worker_log() + ((tmp_path / "second.log").read_text() if second else "")
    assert proc.returncode == 0, out + err + logs
    assert "; it runs again" in out
    assert out.splitlines().count("[long] started") == 1  # the second run's: the first was read
    assert (root / "out.txt").read_text() == "ok\n"
    assert "out.txt" in (root / "dvc.lock").read_text()
    leftovers = containers_under(docker_client, tmp_path, stage="long")
    assert leftovers == []  # the killed run's container was reaped
    assert list((home / "jobs").iterdir()) == []  # and its workspace removed
    if second is not None:  # RQ's record of the lost job is finished off, not started forever
        _wait_until_no_job_is_started(fleet)


def _wait_until_no_job_is_started(fleet: Fleet) -> None:
    """Read raw: RQ's own count() would run its cleanup, doing the worker's work for it."""
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    deadline = time.monotonic() + 150
    while client.zcard("rq:wip:default"):
        assert time.monotonic() < deadline, "a lost job stays started: " + fleet.worker_log()
        time.sleep(0.2)
    failed = [m.decode().split(":")[0] for m in client.zrange("rq:failed:default", 0, -1)]
    assert len(failed) == 1, failed  # the lost run; the second one finished
    assert client.hget(f"rq:job:{failed[0]}", "status") == b"failed"


@on_every_s3()
def test_the_redis_index_names_hits_the_store_confirms_and_is_rebuilt_from_it(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, s3_bucket: Bucket
) -> None:
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    first = make_repo(PIPELINE, "first")
    assert submit(first, fleet, busybox_image).returncode == 0, fleet.worker_log()
    indexed = sorted(client.scan_iter("executor:runs:*"))
    assert len(indexed) == 2  # one key per stage, written by the worker
    # The index alone makes nothing cached: without the store's entries the stages run.
    runs = s3_bucket.keys("fleet/runs/") + s3_bucket.keys("fleet/executor/runs/")
    assert runs
    s3_bucket.client.delete_objects(
        Bucket=s3_bucket.name, Delete={"Objects": [{"Key": k} for k in runs]}
    )
    second = make_repo(PIPELINE, "second")
    done = submit(second, fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert "is cached" not in done.stdout
    assert fleet.jobs_run() == 4
    # Without the index (a new Redis), the store serves the hits and the index is rebuilt.
    client.delete(*indexed)
    third = make_repo(PIPELINE, "third")
    done = submit(third, fleet, busybox_image)
    assert done.stdout.count("is cached - skipping run") == 2, done.stdout + done.stderr
    assert sorted(client.scan_iter("executor:runs:*")) == indexed
    assert fleet.jobs_run() == 4
    assert (third / "dvc.lock").read_text() == (first / "dvc.lock").read_text()


def test_the_same_work_submitted_twice_at_once_runs_once(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    files = {
        "dvc.yaml": "stages:\n  slow:\n    cmd: echo started; sleep 3; echo done > out.txt\n"
        "    deps: [in.txt]\n    outs: [out.txt]\n",
        "in.txt": "x\n",
    }
    first, second = make_repo(files, "first"), make_repo(files, "second")
    proc = submit_until_started(first, fleet, busybox_image)
    follower = submit(second, fleet, busybox_image)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert follower.returncode == 0, follower.stderr
    assert "the same work submitted elsewhere" in follower.stdout
    assert fleet.jobs_run() == 1
    for root in (first, second):
        assert (root / "out.txt").read_text() == "done\n"
    assert (first / "dvc.lock").read_text() == (second / "dvc.lock").read_text()


SUBDIR_PIPELINE = {
    "sub/dvc.yaml": """\
stages:
  tool:
    wdir: work
    cmd: ./run.sh ../data > ../built.txt && echo "$(cat ../built.txt) again" >> ../log.txt
    deps: [run.sh, ../data]
    params: [{../params.yaml: [opts.depth]}]
    outs: [../built.txt, {../log.txt: {persist: true}}]
  count:
    cmd: cat built.txt log.txt | wc -l > counts.txt
    deps: [built.txt, log.txt]
    outs: [counts.txt]
    always_changed: true
""",
    "sub/work/run.sh": '#!/bin/sh\nls "$1" | sort; cat "$1"/*/*.txt; grep depth ../params.yaml\n',
    "sub/data/a/one.txt": "1\n",
    "sub/data/b/two.txt": "2\n",
    "sub/params.yaml": "opts:\n  depth: 3\n",
}


def test_wdir_params_persist_and_directories_as_dvc_repro_has_them(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    ours = make_repo(SUBDIR_PIPELINE, "ours")
    theirs = make_repo(SUBDIR_PIPELINE, "theirs")
    for root in (ours, theirs):
        (root / "sub/work/run.sh").chmod(0o755)
    for turn in range(3):
        if turn == 1:  # `tool` runs again, appending to its persist output
            for root in (ours, theirs):
                (root / "sub/data/a/one.txt").write_text("one\n")
        done = submit(ours, fleet, busybox_image, "-P")
        assert done.returncode == 0, done.stderr + fleet.worker_log()
        repro = dvc_cli(theirs, "repro", "-P")
        assert repro.returncode == 0, repro.stderr
        assert (ours / "sub/dvc.lock").read_text() == (theirs / "sub/dvc.lock").read_text()
        assert outputs(ours) == outputs(theirs)
    assert (ours / "sub/log.txt").read_text().count("again") == 2  # `tool` ran twice


def _enqueue_raw(fleet: Fleet, spec: dict[str, Any]) -> Any:
    """A job put on the queue by hand, as anyone who can write to Redis could."""
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("default", connection=redis.Redis.from_url(fleet.redis_url),
                  serializer=JSONSerializer)  # fmt: skip
    return queue.enqueue("worker.fleet.run_job", spec, fleet.store_url)


def _returned(job: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while job.get_status(refresh=True).value not in ("finished", "failed"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.1)
    value = job.return_value(refresh=True)
    assert isinstance(value, dict), job.latest_result().exc_string
    return value


def test_a_forged_job_cannot_write_a_run_cache_entry(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, s3_bucket: Bucket
) -> None:
    """The entry a worker records is built from the spec, so the spec must be what runs:
    lines that are not its cmd, a dep claiming content its input does not have, or params
    its params file does not hold are refused before anything runs."""
    import hashlib

    from executor.jobspec import JobSpec, OutRequest

    x = hashlib.md5(b"x\n").hexdigest()
    honest = JobSpec(
        address="build", dvc_stage="build", cmd="cat in.txt > out.txt",
        lines=("cat in.txt > out.txt",), image=busybox_image, wdir=".",
        deps=({"path": "in.txt", "hash": "md5", "md5": x, "size": 2},),
        params={}, outs=(OutRequest("out.txt", "out.txt", committed=True),), cacheable=True,
    ).to_dict()  # fmt: skip
    forged = [
        ({**honest, "lines": ["echo evil > out.txt"]}, "lines are not what its cmd runs"),
        (honest, "dep 'in.txt' has no input"),  # claims in.txt, ships nothing
        ({**honest, "inputs": [{"path": "in.txt", "md5": hashlib.md5(b"y\n").hexdigest()}]},
         "input 'in.txt' is not the content its dep names"),
        ({**honest, "inputs": [{"path": "in.txt", "md5": x}, {"path": "other.txt", "md5": x}]},
         "input 'other.txt' is no dep"),
        ({**honest, "params": {"params.yaml": {"lr": 1}},
          "inputs": [{"path": "in.txt", "md5": x}]}, "params params.yaml:lr differ"),
    ]  # fmt: skip
    from executor.settings import Settings
    from executor.store.open import open_store

    store = open_store(fleet.store_url, Settings(s3_endpoint_url=s3_bucket.endpoint))
    store.put_bytes(x, b"x\n")
    store.put_bytes(hashlib.md5(b"y\n").hexdigest(), b"y\n")
    for spec, words in forged:
        value = _returned(_enqueue_raw(fleet, spec))
        assert value["ok"] is False and words in value["failure"]["message"], value
    assert s3_bucket.keys("fleet/runs/") == []


def test_a_forged_result_is_not_checked_out(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    import json

    import redis

    root = make_repo(one_stage("slow", "echo started; sleep 3; echo ok > out.txt"))
    proc = submit_until_started(root, fleet, busybox_image)
    client = redis.Redis.from_url(fleet.redis_url)
    [stream] = list(client.scan_iter("executor:job:*:events"))
    entry = {"cmd": "echo hook", "outs": [{"path": ".git/hooks/post-commit",
             "md5": "0" * 32, "hash": "md5", "size": 1}]}  # fmt: skip
    result = {"address": "slow", "entry": entry, "image_digest": "sha256:" + "0" * 64,
              "duration": 1}  # fmt: skip
    client.xadd(stream, {"t": "end", "v": json.dumps({"ok": True, "result": result})})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "is not the run of what was submitted (another command" in err
    assert not (root / ".git/hooks/post-commit").exists()
    assert not (root / "dvc.lock").exists()


def test_a_forged_result_of_the_right_command_is_not_used(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """Command, deps and out paths right, the output's content another object of the store
    (the input just uploaded): only what a worker recorded in the store is used."""
    import hashlib
    import json

    import redis

    cmd = "echo started; sleep 3; echo ok > out.txt"
    root = make_repo(one_stage("slow", cmd))
    proc = submit_until_started(root, fleet, busybox_image)
    client = redis.Redis.from_url(fleet.redis_url)
    [stream] = list(client.scan_iter("executor:job:*:events"))
    x = hashlib.md5(b"x\n").hexdigest()
    dep = {"path": "in.txt", "hash": "md5", "md5": x, "size": 2}
    out = {"path": "out.txt", "hash": "md5", "md5": x, "size": 2, "isexec": True}
    entry = {"cmd": cmd, "deps": [dep], "outs": [out]}
    digest = "sha256:" + "0" * 64  # well-formed: a malformed one is refused before
    result = {"address": "slow", "entry": entry, "image_digest": digest, "duration": 1}
    client.xadd(stream, {"t": "end", "v": json.dumps({"ok": True, "result": result})})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "is not recorded in the fleet's store as a worker's run" in err
    assert not (root / "out.txt").exists()
    assert not (root / "dvc.lock").exists()


def test_a_workers_own_failure_is_said_and_not_retried(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    jobs = tmp_path / "worker-home" / "jobs"
    assert not jobs.exists()  # made at the first job
    jobs.write_text("not a folder\n")  # every job fails to make its workspace
    root = make_repo(one_stage("s", "echo hi > out.txt"))
    done = submit(root, fleet, busybox_image)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "stage 's': the worker failed: FileExistsError" in done.stderr
    assert "runs again" not in done.stdout
    assert fleet.jobs_run() == 1


def test_a_follower_runs_the_work_itself_when_the_job_it_follows_fails(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    """Only a success is adopted: the second submission follows the first's job (the same
    work: same key, image, environment and layout), and runs the stage itself once that job
    is cancelled by its own submitter (Ctrl-C)."""
    # The stage ends once a `go` file is in its workspace: the first job never gets one (it
    # must still run when the follower, however slow to start, finds it), the follower's does.
    wait_for_go = "until [ -e go ]; do sleep 0.05; done"
    stage = f"    cmd: echo started; {wait_for_go}; echo done > out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    first = make_repo({"dvc.yaml": "stages:\n  slow:\n" + stage, "in.txt": "x\n"}, "first")
    second = make_repo({"dvc.yaml": "stages:\n  slow:\n" + stage, "in.txt": "x\n"}, "second")
    extra = start_worker(fleet.env, tmp_path / "extra-home", tmp_path / "extra.log")
    env = {**os.environ, **GIT_ENV, **fleet.env, "EXECUTOR_IMAGE": busybox_image}
    homes = (tmp_path / "worker-home", tmp_path / "extra-home")
    release = threading.Event()
    try:
        proc = submit_until_started(first, fleet, busybox_image)
        followed = _job_workspaces(homes)
        follower = subprocess.Popen(
            [sys.executable, "-m", "executor", "submit"], cwd=second, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:
            seen.append(line)
            if "the same work submitted elsewhere" in line:
                break
        proc.send_signal(signal.SIGINT)  # the followed job is cancelled, not succeeded
        _, err = proc.communicate(timeout=120)

        def go() -> None:  # into the follower's own job, once there is one
            while not release.wait(0.05):
                for workspace in _job_workspaces(homes) - followed:
                    with contextlib.suppress(OSError):  # removed meanwhile
                        (workspace / "go").touch()

        threading.Thread(target=go, daemon=True).start()
        rest, follower_err = follower.communicate(timeout=120)
    finally:
        release.set()
        stop_worker(extra)
    out = "".join(seen) + rest
    assert proc.returncode != 0, err
    assert follower.returncode == 0, out + follower_err
    assert "the same work submitted elsewhere" in out
    assert "running the stage here" in out
    assert (second / "out.txt").read_text() == "done\n"


def _job_workspaces(homes: tuple[Path, ...]) -> set[Path]:
    """The workspaces of the jobs the workers with these folders hold now."""
    return {ws for home in homes for ws in home.glob("jobs/*/ws")}


def test_work_under_other_limits_is_not_followed(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    """Limits are part of a job's layout: a submission whose stage has other limits (here the
    first's 2 s timeout) is other work, run on its own and never adopted."""
    stage = "    cmd: echo started; sleep 4; echo done > out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    first = make_repo({"dvc.yaml": "stages:\n  slow:\n" + stage +
                       "    meta: {executor: {timeout: 2s}}\n", "in.txt": "x\n"}, "first")  # fmt: skip
    second = make_repo({"dvc.yaml": "stages:\n  slow:\n" + stage, "in.txt": "x\n"}, "second")
    extra = start_worker(fleet.env, tmp_path / "extra-home", tmp_path / "extra.log")
    try:
        proc = submit_until_started(first, fleet, busybox_image)
        other = submit(second, fleet, busybox_image)
        _, err = proc.communicate(timeout=120)
    finally:
        stop_worker(extra)
    assert proc.returncode == 1 and "timed out after 2s" in err, err
    assert other.returncode == 0, other.stdout + other.stderr
    assert "the same work submitted elsewhere" not in other.stdout
    assert (second / "out.txt").read_text() == "done\n"


def test_a_stage_that_rewrites_its_dependency_is_refused_on_a_fleet(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, s3_bucket: Bucket
) -> None:
    """Deps are read-only mounts on a worker (`dvc repro` lets a stage rewrite its own
    deps; `executor run` keeps that): the rewrite fails, so does the stage."""
    root = make_repo(one_stage("fix", "echo y > t && mv t in.txt && cp in.txt out.txt"))
    done = submit(root, fleet, busybox_image)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "mv: can't rename 't': Device or resource busy" in done.stderr
    assert s3_bucket.keys("fleet/runs/") == []
    root2 = make_repo(one_stage("fix", "echo y > in.txt; cp in.txt out.txt"), "append")
    done = submit(root2, fleet, busybox_image)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Read-only file system" in done.stdout
    assert (root2 / "out.txt").read_text() == "x\n"
    assert (root / "in.txt").read_text() == "x\n"
    assert not (root / "dvc.lock").exists()


def test_two_workers_cannot_share_a_folder(fleet: Fleet, tmp_path: Path) -> None:
    log = tmp_path / "second.log"
    second = start_worker(fleet.env, tmp_path / "worker-home", log)
    try:
        assert second.wait(60) == 2
    finally:
        stop_worker(second)
    assert "another executor-worker uses" in log.read_text()
    assert fleet.worker.poll() is None  # the first one goes on


def test_dvcignore_rules_and_exec_bits_inside_folders_reach_the_worker(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    files = {
        ".dvcignore": "*.log\n",
        "dvc.yaml": "stages:\n  build:\n    cmd: ./tools/make.sh\n    deps: [tools]\n"
        "    outs: [out]\n",
        "tools/make.sh": "#!/bin/sh\nmkdir -p out && echo a > out/a.txt && echo noise > out/x.log\n",
        "tools/debug.log": "ignored by DVC, so not a part of the dep\n",
    }
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    for root in (ours, theirs):
        (root / "tools/make.sh").chmod(0o755)
    done = submit(ours, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    status = dvc_cli(ours, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


def test_teams_with_other_environment_variables_do_not_share_runs(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    files = one_stage("s", "echo $SEED > out.txt")
    first = make_repo({**files, ".executor.yaml": "env: {SEED: '1'}\n"})
    second = make_repo({**files, ".executor.yaml": "env: {SEED: '2'}\n"})
    assert submit(first, fleet, busybox_image).returncode == 0
    done = submit(second, fleet, busybox_image)
    assert done.returncode == 0, done.stderr
    assert "is cached" not in done.stdout
    assert (second / "out.txt").read_text() == "2\n"
    assert fleet.jobs_run() == 2
    third = make_repo({**files, ".executor.yaml": "env: {SEED: '1'}\n"})
    done = submit(third, fleet, busybox_image)
    assert "is cached - skipping run" in done.stdout
    assert (third / "out.txt").read_text() == "1\n"


def test_a_digest_from_the_tag_map_counts_only_for_the_tag_a_worker_resolved(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, docker_client: Any
) -> None:
    """executor:images lives in Redis, which others can write: pointing tag N at the digest
    runs of image M were recorded under does not make M's runs N's. Here N is really
    another name of the same image: it runs once, and is then recorded for N as well."""
    import uuid

    import redis

    alias = f"executor/test-alias-{uuid.uuid4().hex[:8]}:1"
    docker_client.images.get(busybox_image).tag(alias)
    try:
        files = one_stage("s", "echo hi > out.txt")
        first = make_repo(files, "first")
        assert submit(first, fleet, busybox_image).returncode == 0
        client = redis.Redis.from_url(fleet.redis_url)
        digest = client.hget("executor:images", busybox_image)
        client.hset("executor:images", alias, digest)  # as a Redis writer could
        second = make_repo(files, "second")
        done = submit(second, fleet, alias)
        assert done.returncode == 0, done.stderr
        assert "is cached" not in done.stdout
        assert fleet.jobs_run() == 2
        third = make_repo(files, "third")
        done = submit(third, fleet, alias)
        assert "is cached - skipping run" in done.stdout, done.stdout
        assert fleet.jobs_run() == 2
    finally:
        docker_client.images.remove(alias)


def test_empty_folders_of_a_dep_folder_are_there_on_the_worker(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    files = {
        "dvc.yaml": "stages:\n  s:\n    cmd: ls -d data/cache/empty data/nothing && cp data/a.txt out.txt\n"
        "    deps: [data]\n    outs: [out.txt]\n",
        "data/a.txt": "a\n",
        "data/cache/empty/": "",
        "data/nothing/": "",
    }
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    done = submit(ours, fleet, busybox_image)
    assert done.returncode == 0, done.stdout + done.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
