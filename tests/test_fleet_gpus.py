"""GPU routing: stages asking for GPUs go to the GPU queue, workers declare their GPUs, a
worker without any never runs (nor fails) a GPU job, and the device request a stage gets is
what reaches the engine. Real redis-server, moto_server, `executor-worker` processes and
the Docker engine (this machine has no GPU: containers are created, never started)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from executor.ceilings import Ceilings, WorkerGpus
from executor.errors import ConfigError
from executor.limits import GPUS_ALL, Limits
from tests.fixtures.fleet import Fleet, stop_worker, submit
from tests.fixtures.repos import GIT_ENV
from worker.sandbox.config import host_config
from worker.sandbox.engine import Mount
from worker.sandbox.request import SandboxRequest

GPU_STAGE = {
    "dvc.yaml": (
        "stages:\n  train:\n    cmd: echo trained > model.txt\n    deps: [in.txt]\n"
        "    outs: [model.txt]\n    meta: {executor: {gpus: 1}}\n"
    ),
    "in.txt": "x\n",
}


@pytest.mark.parametrize(
    ("raw", "gpus"),
    [
        ("", WorkerGpus()),
        ("none", WorkerGpus()),
        ("0", WorkerGpus()),
        ("2", WorkerGpus(2)),
        ("all", WorkerGpus(GPUS_ALL)),
        ("device=0,1", WorkerGpus(2, ("0", "1"))),
        ("device=GPU-3f2a", WorkerGpus(1, ("GPU-3f2a",))),
    ],
)
def test_a_worker_declares_its_gpus(raw: str, gpus: WorkerGpus) -> None:
    assert Ceilings.from_env({"EXECUTOR_WORKER_GPUS": raw}).gpus == gpus


@pytest.mark.parametrize("raw", ["-1", "two", "device=", "device=0,;rm"])
def test_a_bad_gpus_declaration_names_the_flag(raw: str) -> None:
    with pytest.raises(ConfigError, match="--gpus"):
        Ceilings.from_env({"EXECUTOR_WORKER_GPUS": raw})


def test_allow_gpus_from_before_means_all() -> None:
    assert Ceilings.from_env({"EXECUTOR_WORKER_ALLOW_GPUS": "1"}).gpus == WorkerGpus(GPUS_ALL)


@pytest.mark.parametrize(
    ("declared", "asked", "ok"),
    [("", 1, False), ("1", 1, True), ("1", 2, False), ("2", GPUS_ALL, True),
     ("all", 8, True), ("device=0,1", 2, True), ("device=0,1", 3, False)],
)  # fmt: skip
def test_a_stage_gets_at_most_the_gpus_its_worker_declares(
    declared: str, asked: int, ok: bool
) -> None:
    ceilings = Ceilings.from_env({"EXECUTOR_WORKER_GPUS": declared})
    if ok:
        assert ceilings.apply(Limits(gpus=asked), "train").gpus == asked
    else:
        with pytest.raises(ConfigError, match="start workers with --gpus"):
            ceilings.apply(Limits(gpus=asked), "train")


def test_the_device_request_reaches_the_engine(docker_client: Any, busybox_image: str) -> None:
    """The worker's own devices for a worker started with device=..., a count otherwise."""
    gpus = WorkerGpus.parse("device=0,1")
    cases = [
        (Limits(gpus=1), gpus.device_ids(1), {"DeviceIDs": ["0"], "Count": 0}),
        (Limits(gpus=GPUS_ALL), gpus.device_ids(GPUS_ALL), {"DeviceIDs": ["0", "1"]}),
        (Limits(gpus=2), (), {"Count": 2, "DeviceIDs": []}),
        (Limits(gpus=GPUS_ALL), (), {"Count": -1}),
    ]
    for limits, devices, expected in cases:
        request = SandboxRequest(
            stage="train", name="", image=busybox_image, lines=("true",), workdir="/",
            mounts=(Mount(source="/tmp", target="/w"),), env={}, labels={}, limits=limits,
            gpu_devices=devices,
        )  # fmt: skip
        made = docker_client.api.create_container(
            busybox_image, "true", host_config=docker_client.api.create_host_config(
                **host_config(request)),
            labels={"executor.test": "gpus"},
        )  # fmt: skip
        try:
            [seen] = docker_client.api.inspect_container(made["Id"])["HostConfig"]["DeviceRequests"]
        finally:
            docker_client.api.remove_container(made["Id"], force=True)
        assert seen["Capabilities"] == [["gpu"]]
        for key, value in expected.items():
            assert seen.get(key) == value, (limits, devices, seen)


def _submit_in_background(root: Path, fleet: Fleet, image: str, **env: str) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "executor", "submit"],
        cwd=root, env={**os.environ, **GIT_ENV, **fleet.env, "EXECUTOR_IMAGE": image, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_for_job_in(client: Any, queue: str, proc: Any) -> str:
    deadline = time.monotonic() + 120
    while not client.llen(f"rq:queue:{queue}"):
        assert proc.poll() is None, "submit ended"
        assert time.monotonic() < deadline, f"no job reached the queue '{queue}'"
        time.sleep(0.05)
    [job_id] = client.lrange(f"rq:queue:{queue}", 0, -1)
    return str(job_id.decode())


def test_a_gpu_stage_goes_to_the_gpu_queue_and_no_cpu_worker_takes_it(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    proc = _submit_in_background(make_repo(GPU_STAGE), fleet, busybox_image)
    try:
        job_id = _wait_for_job_in(client, "gpu", proc)
        description = client.hget(f"rq:job:{job_id}", "description") or b""
        assert description.decode().startswith("stage train of ")  # as rq info shows it
        assert client.llen("rq:queue:default") == 0
        assert client.hget(f"rq:job:{job_id}", "status") == b"queued"
        assert "stage train" not in fleet.worker_log()  # the CPU worker never took it
    finally:
        proc.kill()
        proc.wait()


def test_a_gpu_job_on_a_cpu_workers_queue_is_moved_not_failed(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """A coordinator that names another GPU queue (or an older one) sends the job to the
    CPU worker's queue: the worker hands it to its GPU queue under the same id."""
    import redis

    client = redis.Redis.from_url(fleet.redis_url)
    root = make_repo(GPU_STAGE)
    proc = _submit_in_background(root, fleet, busybox_image, EXECUTOR_GPU_QUEUE="default")
    try:
        job_id = _wait_for_job_in(client, "gpu", proc)
        assert "moved to the queue 'gpu'" in fleet.worker_log()
        assert client.hget(f"rq:job:{job_id}", "status") == b"queued"
        assert client.zcard("rq:failed:default") == 0
        assert client.llen("rq:queue:default:intermediate") == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_without_gpus_refuses_to_serve_the_gpu_queue(fleet: Fleet, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--queue", "default", "--queue", "gpu",
         "--dir", str(tmp_path / "home")],
        env={**os.environ, **fleet.env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "has no GPUs but takes jobs from the GPU queue 'gpu'" in done.stderr
    assert "--gpus" in done.stderr


def test_a_gpu_worker_refuses_a_stage_asking_more_gpus_than_it_declares(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    log = tmp_path / "gpu-worker.log"
    with log.open("wb") as out:
        gpu_worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--queue", "gpu", "--gpus", "1",
             "--dir", str(tmp_path / "gpu-home")],
            env={**os.environ, **fleet.env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        fleet.worker = gpu_worker  # stopped by the fixture too
        fleet.wait_for_workers(2)
        files = dict(GPU_STAGE, **{"dvc.yaml": GPU_STAGE["dvc.yaml"].replace("gpus: 1", "gpus: 2")})
        done = submit(make_repo(files), fleet, busybox_image)
        assert done.returncode == 2, done.stdout + done.stderr + log.read_text()
        assert "asks for gpus 2, over this worker's ceiling of 1" in done.stderr
        assert "start workers with --gpus" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        stop_worker(gpu_worker)
