"""The pieces a worker in a container relies on, on the machine's Docker engine: its folder's
host path, the reaping of another worker container's stages, its slot in a shared folder,
and the fence that stops a stage its worker can no longer vouch for."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from executor.errors import ConfigError
from worker.jobdirs import claim_home
from worker.jobwatch import JobWatch
from worker.sandbox.hostpaths import HostPaths, check_host_paths
from worker.sandbox.owner import own_container_id
from worker.sandbox.reaper import owner_alive, reap


def test_host_paths_map_only_what_is_under_the_workers_folder() -> None:
    paths = HostPaths("/var/lib/executor-worker", "/srv/executor")
    assert paths.to_host("/var/lib/executor-worker") == "/srv/executor"
    assert paths.to_host("/var/lib/executor-worker/slot-1/jobs/x/ws") == (
        "/srv/executor/slot-1/jobs/x/ws"
    )
    assert paths.to_host("/var/lib/executor-worker-other/x") == "/var/lib/executor-worker-other/x"
    assert paths.to_host("/var/lib/executor-worker/../etc") == "/var/lib/etc"  # normalised first


def test_this_test_process_is_not_in_a_container() -> None:
    assert own_container_id({}) is None  # the tests run on the engine's host
    assert own_container_id({"EXECUTOR_WORKER_CONTAINER": "abc"}) == "abc"


def test_a_mapping_that_points_elsewhere_is_refused(
    docker_client: Any, busybox_image: str, tmp_path: Path
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    env = {"EXECUTOR_WORKER_PROBE_IMAGE": busybox_image}
    check_host_paths(docker_client, home, HostPaths(str(home), str(home)), env)  # the truth
    with pytest.raises(ConfigError, match="EXECUTOR_WORKER_HOST_DIR"):
        check_host_paths(docker_client, home, HostPaths(str(home), str(elsewhere)), env)
    assert list(home.iterdir()) == [] and list(elsewhere.iterdir()) == []  # the probe file too


def test_a_dead_worker_containers_stages_are_reaped_a_live_ones_kept(
    docker_client: Any, busybox_image: str
) -> None:
    def container(labels: dict[str, str]) -> Any:
        return docker_client.containers.run(
            busybox_image, ["sleep", "600"], detach=True, labels=labels, network_mode="none"
        )

    live_worker = container({"executor-test": "reaper"})
    dead_worker = container({"executor-test": "reaper"})
    dead_worker.stop(timeout=0)
    gone_worker = container({"executor-test": "reaper"})
    stages = {
        name: container({"executor": "1", "executor.stage": name, "executor.container": owner.id})
        for name, owner in (("live", live_worker), ("dead", dead_worker), ("gone", gone_worker))
    }
    gone_worker.remove(force=True)  # a worker container removed, not just stopped
    try:
        removed = reap(docker_client, is_alive=owner_alive(docker_client))
        assert stages["dead"].name in removed and stages["gone"].name in removed
        assert stages["live"].name not in removed
        stages["live"].reload()
        assert stages["live"].status == "running"
    finally:
        for c in (*stages.values(), live_worker, dead_worker, gone_worker):
            with contextlib.suppress(docker.errors.NotFound):  # the reaper took it
                c.remove(force=True)


def test_workers_sharing_a_folder_take_a_slot_each(tmp_path: Path) -> None:
    first = claim_home(tmp_path, shared=True)
    second = claim_home(tmp_path, shared=True)  # the locks are per open file: held apart
    assert first != second and {first.name, second.name} == {"slot-1", "slot-2"}
    with pytest.raises(ConfigError, match="--dir"):
        claim_home(first)  # a worker on its own folder, held already


def test_a_job_whose_heartbeat_cannot_land_is_fenced() -> None:
    watch = JobWatch("executor-fenced", drain_grace=60, fence_after=0.5)
    watch.beaten = time.monotonic()
    thread = threading.Thread(target=watch.fence, daemon=True)
    thread.start()
    try:
        assert watch.cancel.wait(10), "the stage was never stopped"
        assert watch.handed_over.is_set()  # handed over: it runs again elsewhere, not failed
    finally:
        watch.done.set()
        thread.join(5)


def test_a_job_whose_heartbeat_lands_is_not_fenced() -> None:
    watch = JobWatch("executor-beating", drain_grace=60, fence_after=1.5)
    thread = threading.Thread(target=watch.fence, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            watch.beaten = time.monotonic()  # what each landed heartbeat does
            time.sleep(0.1)
        assert not watch.cancel.is_set()
    finally:
        watch.done.set()
        thread.join(5)


def test_the_health_check_says_when_the_engine_does_not_answer(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.health import _engine_problem

    assert _engine_problem() is None  # this machine's engine answers
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    why = _engine_problem()
    assert why is not None and "no Docker engine is reachable" in why
