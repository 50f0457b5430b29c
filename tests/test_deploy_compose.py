"""deploy/compose.yaml started for real with `docker-compose`, on the images built from
docker/ (compose.local.yaml): Redis, the S3 server and two workers, all healthy, run the
example pipeline submitted from the host, as `dvc repro` would have it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.container_fleet import FleetImages, wait_until
from tests.fixtures.docker_env import _missing
from tests.fixtures.fleet import outputs
from tests.fixtures.ports import free_port
from tests.fixtures.repos import GIT_ENV, init_repo

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def compose_files() -> list[str]:
    return ["-f", str(DEPLOY / "compose.yaml"), "-f", str(DEPLOY / "compose.local.yaml")]


@pytest.fixture
def compose_bin() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        _missing("docker-compose is missing: apt-get install docker-compose (scripts/setup)")
    assert found is not None
    return found


def test_every_setting_compose_reads_is_in_env_example() -> None:
    used = set()
    for name in ("compose.yaml", "compose.local.yaml"):
        text = (DEPLOY / name).read_text()
        used |= set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    listed = set(re.findall(r"^#?([A-Z_][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(), re.M))
    assert used - listed == set(), "settings compose reads that .env.example does not list"
    assert listed - used == set(), ".env.example lists settings compose does not read"


def test_compose_refuses_to_start_without_its_secrets(compose_bin: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("EXECUTOR_FLEET_ADDRESS=127.0.0.1\n")
    done = subprocess.run(
        [compose_bin, *compose_files(), "--env-file", str(env_file), "config", "-q"],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr


@pytest.fixture
def compose_fleet(
    compose_bin: str, fleet_images: FleetImages, docker_client: Any, tmp_path: Path
) -> Iterator[dict[str, str]]:
    project = "xc" + secrets.token_hex(4)
    password, secret = secrets.token_hex(16), secrets.token_hex(16)
    redis_port, s3_port = free_port(), free_port()
    env_file = tmp_path / "compose.env"
    env_file.write_text(
        f"EXECUTOR_FLEET_ADDRESS=127.0.0.1\nEXECUTOR_REDIS_PORT={redis_port}\n"
        f"EXECUTOR_S3_PORT={s3_port}\nREDIS_PASSWORD={password}\nS3_ACCESS_KEY=executor\n"
        f"S3_SECRET_KEY={secret}\nEXECUTOR_WORKER_DRAIN_GRACE=5\nEXECUTOR_STOP_GRACE=3\n"
        f"EXECUTOR_WORKER_STOP_PERIOD=20s\nEXECUTOR_WORKER_IMAGE={fleet_images.worker}\n"
        f"EXECUTOR_REDIS_IMAGE={fleet_images.redis}\nEXECUTOR_S3_IMAGE={fleet_images.s3}\n"
    )
    base = [compose_bin, "-p", project, *compose_files(), "--env-file", str(env_file)]
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    up = subprocess.run(
        [*base, "up", "-d", "--scale", "worker=2"], capture_output=True, text=True, env=clean_env
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {
            "project": project,
            "EXECUTOR_REDIS_URL": f"redis://:{password}@127.0.0.1:{redis_port}/0",
            "EXECUTOR_STORE": "s3://executor/fleet",
            "EXECUTOR_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "AWS_ACCESS_KEY_ID": "executor",
            "AWS_SECRET_ACCESS_KEY": secret,
        }
    finally:
        logs = subprocess.run([*base, "logs", "--tail", "40"], capture_output=True, text=True,
                              env=clean_env)  # fmt: skip
        down = subprocess.run(
            [*base, "down", "-v", "-t", "30"], capture_output=True, text=True, env=clean_env
        )
        left = docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
        assert down.returncode == 0 and not left, down.stderr + logs.stdout


def workers_of(docker_client: Any, project: str) -> list[Any]:
    return docker_client.containers.list(
        all=True,
        filters={"label": [f"com.docker.compose.project={project}",
                           "com.docker.compose.service=worker"]},
    )  # fmt: skip


def test_compose_with_two_workers_runs_the_example_as_dvc_repro_does(
    compose_fleet: dict[str, str],
    docker_client: Any,
    busybox_image: str,
    tmp_path: Path,
    dvc_cli: Any,
) -> None:
    project = compose_fleet.pop("project")
    workers = workers_of(docker_client, project)
    assert len(workers) == 2

    def healthy() -> bool:
        for worker in workers:
            worker.reload()
        return all(w.attrs["State"].get("Health", {}).get("Status") == "healthy" for w in workers)

    wait_until("both workers healthy (python -m worker.health)", healthy, 180)
    docker_client.images.get(busybox_image).tag("executor/busybox", "example")
    repos = []
    for name in ("ours", "theirs"):
        root = tmp_path / name
        shutil.copytree(ROOT / "examples" / "hello", root)
        init_repo(root)
        repos.append(root)
    ours, theirs = repos
    env = {**os.environ, **GIT_ENV, **compose_fleet}
    done = subprocess.run([sys.executable, "-m", "executor", "submit"], cwd=ours, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)
    ran = [w.logs().decode(errors="replace").count(": Job OK (") for w in workers]
    assert sum(ran) == 5 and all(ran), ran  # shout, count@A/E/O, report: both workers took some
