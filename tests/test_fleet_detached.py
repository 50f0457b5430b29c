"""Detached fleet runs: `executor submit --detach` returns at once, workers carry the run on,
`executor runs/status/logs/cancel/fetch` work from any shell. Real redis-server, moto_server,
`executor-worker` processes and the Docker engine; `dvc repro` is the oracle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.fixtures.docker_env import containers_under
from tests.fixtures.fleet import Fleet, outputs, submit
from tests.fixtures.repos import run_cli
from tests.fixtures.s3s_server import on_every_s3

PIPELINE = {
    "dvc.yaml": """\
stages:
  prepare:
    cmd: mkdir -p data && cat in.txt > data/a.txt && grep lr params.yaml > data/b.txt && echo prepared
    deps: [in.txt]
    params: [lr]
    outs: [data]
  train:
    cmd: >-
      cat data/a.txt data/b.txt | wc -c > model.txt && echo '{"n": 1}' > scores.json
    deps: [data]
    outs: [model.txt]
    metrics: [{scores.json: {cache: false}}]
  report:
    cmd: cat model.txt > report.txt
    deps: [model.txt]
    outs: [report.txt]
  other:
    cmd: echo other > other.txt
    deps: [in.txt]
    outs: [other.txt]
""",
    "in.txt": "some data\n",
    "params.yaml": "lr: 0.5\n",
}


def long_files(seconds: int) -> dict[str, str]:
    """A stage `long` that prints `started`, sleeps `seconds` (SIGINT traps to exit 130),
    and a stage `after` that reads its output."""
    dvc_yaml = f"""\
stages:
  long:
    cmd: echo started; trap 'echo got INT; exit 130' INT; sleep {seconds} & wait; echo ok > out.txt
    deps: [in.txt]
    outs: [out.txt]
  after:
    cmd: cat out.txt > after.txt
    deps: [out.txt]
    outs: [after.txt]
"""
    return {"dvc.yaml": dvc_yaml, "in.txt": "x\n"}


LONG_FILES = long_files(60)


def cli(root: Path, fleet: Fleet, *args: str) -> Any:
    return run_cli([sys.executable, "-m", "executor", *args], root, fleet.env)


def detach(root: Path, fleet: Fleet, image: str, *args: str) -> str:
    """Submit detached; the run id it printed."""
    done = submit(root, fleet, image, "--detach", *args)
    assert done.returncode == 0, done.stdout + done.stderr + fleet.worker_log()
    run_id = done.stdout.strip().splitlines()[-1]
    assert run_id and " " not in run_id, done.stdout
    return run_id


def run_status(root: Path, fleet: Fleet, run_id: str) -> dict[str, Any]:
    done = cli(root, fleet, "status", run_id, "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def wait_for(
    root: Path,
    fleet: Fleet,
    run_id: str,
    ok: Callable[[dict[str, Any]], bool],
    timeout: float = 180,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = run_status(root, fleet, run_id)
        if ok(doc):
            return doc
        assert time.monotonic() < deadline, json.dumps(doc, indent=1) + fleet.worker_log()
        time.sleep(0.2)


def ended(doc: dict[str, Any]) -> bool:
    return doc["run"]["state"] != "running"


@on_every_s3()
def test_a_detached_run_fetched_gives_what_dvc_repro_gives(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    ours = make_repo(PIPELINE, "ours")
    theirs = make_repo(PIPELINE, "theirs")
    run_id = detach(ours, fleet, busybox_image)
    assert not (ours / "dvc.lock").exists()  # nothing lands before fetch
    doc = wait_for(ours, fleet, run_id, ended)
    assert doc["run"]["state"] == "succeeded", doc
    assert {a: s["state"] for a, s in doc["stages"].items()} == {
        "prepare": "ran", "train": "ran", "report": "ran", "other": "ran"
    }  # fmt: skip
    client = redis.Redis.from_url(fleet.redis_url)
    job = Job.fetch(doc["stages"]["prepare"]["job"], connection=client, serializer=JSONSerializer)
    assert job.description.startswith("stage prepare of ours (")  # as `rq info` shows it
    listed = cli(ours, fleet, "runs")
    assert run_id in listed.stdout and "succeeded" in listed.stdout, listed.stdout
    log = cli(ours, fleet, "logs", run_id, "prepare")
    assert log.returncode == 0 and "prepared" in log.stdout, log.stdout + log.stderr
    fetched = cli(ours, fleet, "fetch", run_id)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)
    status = dvc_cli(ours, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


def test_a_second_detached_run_is_resolved_from_the_run_cache_without_a_container(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    first = make_repo(PIPELINE, "first")
    run_id = detach(first, fleet, busybox_image)
    assert wait_for(first, fleet, run_id, ended)["run"]["state"] == "succeeded"
    assert cli(first, fleet, "fetch", run_id).returncode == 0
    jobs = fleet.jobs_run()
    second = make_repo(PIPELINE, "second")
    again = detach(second, fleet, busybox_image)
    doc = wait_for(second, fleet, again, ended)
    assert {s["state"] for s in doc["stages"].values()} == {"restored"}, doc
    assert fleet.jobs_run() == jobs  # not one job more
    assert cli(second, fleet, "fetch", again).returncode == 0
    assert outputs(second) == outputs(first)


def test_fetch_refuses_a_workspace_whose_inputs_changed(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    root = make_repo(PIPELINE)
    run_id = detach(root, fleet, busybox_image)
    wait_for(root, fleet, run_id, ended)
    (root / "in.txt").write_text("other data\n")
    fetched = cli(root, fleet, "fetch", run_id)
    assert fetched.returncode == 2, fetched.stdout + fetched.stderr
    assert "input 'in.txt' changed since it was submitted" in fetched.stderr
    assert not (root / "dvc.lock").exists() and not (root / "model.txt").exists()


def test_cancel_from_another_shell_stops_the_running_stage_and_the_rest_never_start(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    root = make_repo(LONG_FILES)
    run_id = detach(root, fleet, busybox_image)
    wait_for(root, fleet, run_id, lambda d: d["stages"]["long"]["state"] == "running")
    follow = subprocess.Popen(
        [sys.executable, "-m", "executor", "logs", run_id, "long", "-f"], cwd=root,
        env={**os.environ, **fleet.env}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follow.stdout is not None
    assert follow.stdout.readline() == "started\n"  # streamed while the stage runs
    cancelled = cli(root, fleet, "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    doc = wait_for(root, fleet, run_id, ended, timeout=60)
    assert doc["run"]["state"] == "cancelled"
    assert doc["stages"]["long"]["state"] == "cancelled"
    assert doc["stages"]["after"]["state"] == "cancelled"
    rest, _ = follow.communicate(timeout=60)  # -f ends with the stage
    assert "got INT" in rest
    stored = cli(root, fleet, "logs", run_id, "long")
    assert "got INT" in stored.stdout, stored.stdout + fleet.worker_log()
    assert containers_under(docker_client, tmp_path, stage="long") == []
    fetched = cli(root, fleet, "fetch", run_id)
    assert fetched.returncode == 1 and not (root / "out.txt").exists()
