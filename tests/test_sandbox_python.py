"""The sandbox with a real bash and python3 (a debootstrap image, built once per machine)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from executor.limits import Limits
from worker.sandbox.engine import DockerSandbox, Mount, SandboxRequest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftover_containers")]


def request(image: str, ws: Path, lines: tuple[str, ...], **kw: Any) -> SandboxRequest:
    return SandboxRequest(
        stage="py", name=f"executor-test-{uuid.uuid4().hex[:12]}", image=image, lines=lines,
        workdir="/ws", mounts=(Mount(str(ws), "/ws"),), env={"DVC_ROOT": "/ws"}, labels={},
        user="0:0", **kw,
    )  # fmt: skip


def test_image_shell_bash_runs_each_line_with_dvc_flags(docker_client, python_image, tmp_path):
    sandbox = DockerSandbox(docker_client, stop_grace=2)
    line = "tr '\\0' ' ' < /proc/$$/cmdline > $DVC_ROOT/argv"
    outcome = sandbox.run(request(python_image, tmp_path, (line,)))
    assert outcome.status == "succeeded", outcome
    assert (tmp_path / "argv").read_text() == f"/bin/bash --noprofile --norc -c {line} "


def test_python_child_handles_sigterm_on_timeout(docker_client, python_image, tmp_path):
    sandbox = DockerSandbox(docker_client, stop_grace=5)
    # The first python3 of a freshly built image reads its files cold through the storage
    # driver (seconds on fuse-overlayfs): warm up, so the timeout below measures the stage.
    warm = sandbox.run(request(python_image, tmp_path, ("python3 -c 'import signal, sys, time'",)))
    assert warm.status == "succeeded", warm
    script = (
        "import signal, sys, time\n"
        "def bye(n, f):\n"
        "    open('/ws/handled', 'w').write(str(n)); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "open('/ws/ready', 'w').close()\n"
        "time.sleep(1000)\n"
    )
    lines = (f'python3 -c "{script}"; echo after',)
    timeout = 4.0
    outcome = sandbox.run(request(python_image, tmp_path, lines, limits=Limits(timeout=timeout)))
    assert outcome.status == "timed_out"
    assert (tmp_path / "ready").exists(), f"python3 had not set its handler within {timeout} s"
    assert (tmp_path / "handled").read_text() == "15"
    assert outcome.duration < timeout + 5
