"""The Docker sandbox on the machine's real engine, with the locally built busybox image."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from executor.errors import ConfigError, SandboxError, WorkspaceError
from executor.limits import Limits
from executor.stageio import StageIO
from tests.fixtures.docker_env import as_host, own_host
from worker.sandbox.engine import (
    DockerSandbox,
    Mount,
    SandboxOutcome,
    SandboxRequest,
    owner_process_alive,
    reap,
)

pytestmark = pytest.mark.usefixtures("no_leftover_containers")

GRACE = 2.0
UID = 4321 if os.getuid() == 0 else os.getuid()  # as root, prove ids are not just inherited
GID = 4321 if os.getuid() == 0 else os.getgid()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox(docker_client: Any) -> DockerSandbox:
    return DockerSandbox(docker_client, stop_grace=GRACE)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace owned by UID:GID, mounted at /ws; the stage's wdir is /ws/sub."""
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    for path in (root, root / "sub"):
        os.chown(path, UID, GID)
    return root


@pytest.fixture
def make(ws: Path, busybox_image: str) -> Callable[..., SandboxRequest]:
    def make(lines: Sequence[str] = ("true",), **kw: Any) -> SandboxRequest:
        fields: dict[str, Any] = {
            "stage": "test",
            "name": f"executor-test-{uuid.uuid4().hex[:12]}",
            "image": busybox_image,
            "lines": tuple(lines),
            "workdir": "/ws/sub",
            "mounts": (Mount(str(ws), "/ws"),),
            "env": {"DVC_ROOT": "/ws", "DVC_STAGE": "test"},
            "labels": {},
            "limits": Limits(),
        }
        fields.update(kw)
        return SandboxRequest(**fields)

    return make


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Background:
    """sandbox.run in a thread; `ready` is set when the command prints a line `ready`."""

    def __init__(self, sandbox: DockerSandbox, make: Callable[..., SandboxRequest], **kw: Any):
        self.ready = threading.Event()
        self.cancel = threading.Event()
        self.request = make(io=StageIO(self.cancel, self._log), **kw)
        self.outcome: SandboxOutcome | None = None
        self.returned_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(sandbox,), daemon=True)
        self._thread.start()

    def _log(self, line: str) -> None:
        if line == "ready":
            self.ready.set()

    def _run(self, sandbox: DockerSandbox) -> None:
        self.outcome = sandbox.run(self.request)
        self.returned_at = time.monotonic()

    def wait_ready(self) -> None:
        assert self.ready.wait(20), "the command never printed 'ready'"

    def result(self, timeout: float = 30) -> SandboxOutcome:
        self._thread.join(timeout)
        assert self.outcome is not None, "sandbox.run did not return"
        return self.outcome


def sandbox_containers(client: Any, name: str) -> list[Any]:
    return client.containers.list(all=True, filters={"name": f"^/{name}$"})


def processes(*argv: str) -> list[int]:
    """Pids on this host running exactly `argv` (container processes are visible here)."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# --- what the command sees -------------------------------------------------------------------


def test_env_workdir_and_digest(sandbox, make, ws, docker_client, busybox_image):
    request = make(
        ["env > $DVC_ROOT/env.txt; pwd > $DVC_ROOT/pwd.txt"],
        env={"DVC_ROOT": "/ws", "DVC_STAGE": "train@1", "GREETING": "hello world"},
    )
    outcome = sandbox.run(request)
    assert outcome.status == "succeeded", outcome
    env = dict(line.split("=", 1) for line in (ws / "env.txt").read_text().splitlines())
    assert env["DVC_ROOT"] == "/ws"
    assert env["DVC_STAGE"] == "train@1"
    assert env["GREETING"] == "hello world"
    assert env["HOME"] == "/tmp"
    assert "TINI_KILL_PROCESS_GROUP" not in env
    assert (ws / "pwd.txt").read_text() == "/ws/sub\n"
    assert outcome.image_digest == docker_client.images.get(busybox_image).id


def test_lines_are_separate_shells_and_stop_at_first_failure(sandbox, make, ws):
    lines = ["export X=1; cd /", 'test -z "$X" && pwd > $DVC_ROOT/where', "exit 7", "touch never"]
    outcome = sandbox.run(make(lines))
    assert outcome.status == "failed"
    assert outcome.exit_code == 7
    assert outcome.failed_line == "exit 7"
    assert outcome.message == "failed to run: exit 7, exited with 7"
    assert (ws / "where").read_text() == "/ws/sub\n"
    assert not (ws / "sub" / "never").exists()


def test_a_command_exiting_143_by_itself_is_a_failure_not_a_timeout(sandbox, make):
    outcome = sandbox.run(make(["true", "kill -TERM $$"], limits=Limits(timeout=60)))
    assert (outcome.status, outcome.exit_code) == ("failed", 143)
    assert outcome.failed_line == "kill -TERM $$"


def test_log_lines_streamed_and_tail_bounded(sandbox, make):
    seen: list[str] = []
    outcome = sandbox.run(
        make(["seq 1 100; printf 'no newline'; exit 1"], io=StageIO(on_log=seen.append))
    )
    assert seen == [str(i) for i in range(1, 101)] + ["no newline"]
    tail = outcome.log_tail.splitlines()
    assert tail == [str(i) for i in range(82, 101)] + ["no newline"]
    assert "executor-failed" not in outcome.log_tail
    assert outcome.failed_line == "seq 1 100; printf 'no newline'; exit 1"


def test_all_output_of_a_successful_run_is_in_when_it_returns(sandbox, make):
    """A success returns on the driver's end marker, before the engine reports the exit: the
    output written just before it, on both streams, must be in already."""
    seen: list[str] = []
    line = "seq 1 3000; echo to-stderr >&2; printf 'no newline'"
    outcome = sandbox.run(make([line], io=StageIO(on_log=seen.append)))
    assert outcome.status == "succeeded", outcome
    assert [x for x in seen if x != "to-stderr"] == [str(i) for i in range(1, 3001)] + [
        "no newline"
    ]
    assert "to-stderr" in seen
    # The two streams are separate pipes: only the order within each is defined.
    assert [x for x in outcome.log_tail.splitlines() if x != "to-stderr"][-1] == "no newline"
    assert "executor-failed" not in outcome.log_tail


@pytest.mark.parametrize(
    ("shell", "flags"),
    [("bash", ["--noprofile", "--norc"]), ("zsh", ["--no-rcs"]), ("sh", [])],
)
def test_each_line_gets_dvc_flags_for_the_shell(sandbox, make, ws, shell, flags):
    # busybox has no bash: a stand-in named like the shell records the argv it was given.
    tools = ws / "tools"
    tools.mkdir()
    fake = tools / shell
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" >> "$DVC_ROOT/argv"\n'
        'while [ "$1" != -c ]; do shift; done\nexec /bin/sh -c "$2"\n'
    )
    fake.chmod(0o755)
    outcome = sandbox.run(
        make(["echo one", "echo two"], env={"DVC_ROOT": "/ws", "SHELL": f"/ws/tools/{shell}"})
    )
    assert outcome.status == "succeeded", outcome
    argv = (ws / "argv").read_text().splitlines()
    assert argv == [*flags, "-c", "echo one", *flags, "-c", "echo two"]


def test_outputs_are_owned_by_the_requested_user(sandbox, make, ws):
    outcome = sandbox.run(make(["echo x > out.txt; id -u > uid; id -g > gid"], user=f"{UID}:{GID}"))
    assert outcome.status == "succeeded", outcome
    out = (ws / "sub" / "out.txt").stat()
    assert (out.st_uid, out.st_gid) == (UID, GID)
    assert (ws / "sub" / "uid").read_text().strip() == str(UID)


def test_default_user_is_the_owner_of_the_first_mount(sandbox, make, ws):
    os.chown(ws, UID + 1, GID + 1)
    os.chown(ws / "sub", UID + 1, GID + 1)
    outcome = sandbox.run(make(["touch out.txt"]))
    assert outcome.status == "succeeded", outcome
    out = (ws / "sub" / "out.txt").stat()
    assert (out.st_uid, out.st_gid) == (UID + 1, GID + 1)


# --- signals -------------------------------------------------------------------------------


def test_cancel_reaches_the_trap_with_sigint_and_no_later_line_runs(sandbox, make, ws):
    trap = (
        # The handler takes a while: the run must wait for it, not tear the container down.
        # Its background sleep ignores SIGINT (as any `&` job of sh does): no reason to wait.
        "trap 'sleep 0.5; echo INT > $DVC_ROOT/trapped; exit 0' INT; "
        "trap 'sleep 0.5; echo TERM > $DVC_ROOT/trapped; exit 0' TERM; "
        "sleep 1000 & echo ready; wait"
    )
    run = Background(sandbox, make, lines=(trap, "touch $DVC_ROOT/later"))
    run.wait_ready()
    run.cancel.set()
    outcome = run.result()
    assert outcome.status == "cancelled"
    assert (ws / "trapped").read_text() == "INT\n"
    assert not (ws / "later").exists()
    assert outcome.exit_code == 130  # the trap exited by itself: no SIGKILL (137) was needed


def test_timeout_reaches_the_trap_with_sigterm(sandbox, make, ws):
    trap = (
        "trap 'sleep 0.5; echo INT > $DVC_ROOT/trapped; exit 0' INT; "
        "trap 'sleep 0.5; echo TERM > $DVC_ROOT/trapped; exit 0' TERM; "
        "sleep 1000 & wait"
    )
    outcome = sandbox.run(make([trap], limits=Limits(timeout=1)))
    assert outcome.status == "timed_out"
    assert (ws / "trapped").read_text() == "TERM\n"
    assert outcome.exit_code == 143  # the trap exited by itself: no SIGKILL (137) was needed
    assert outcome.duration >= 1.0


def test_a_program_still_in_its_handler_when_the_line_shell_dies_is_waited_for(
    docker_client, make, ws
):
    # The line's shell dies of SIGTERM at once (a shell waits for a child's verdict only on
    # SIGINT); the program it started takes a second to clean up. Tearing the container
    # down when the shell exits would cut that short.
    sandbox = DockerSandbox(docker_client, stop_grace=5, cancel_signal="SIGTERM")
    program = 'sh -c \'trap "sleep 1; echo done > $DVC_ROOT/handled; exit 0" INT TERM; ' + (
        "echo ready; while :; do sleep 0.1; done'; echo after"
    )
    run = Background(sandbox, make, lines=[program])
    run.wait_ready()
    run.cancel.set()
    result = run.result()
    assert result.status == "cancelled"
    assert (ws / "handled").read_text() == "done\n"
    assert result.exit_code != 137  # ended by itself, within the grace: no SIGKILL


def test_cancel_leaves_no_process_of_a_tree_behind(sandbox, make, docker_client):
    # The sleeps are found among the host's processes by their argv: one of the test's own.
    secs = str(100_000 + uuid.uuid4().int % 900_000)
    run = Background(
        sandbox, make, lines=[f"sh -c 'sleep {secs} & sleep {secs} & wait' & echo ready; wait"]
    )
    run.wait_ready()
    wait_until(lambda: len(processes("sleep", secs)) == 2, 10, "both sleeps to start")
    cancelled_at = time.monotonic()
    run.cancel.set()
    outcome = run.result()
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130)  # no SIGKILL needed
    assert run.returned_at - cancelled_at <= GRACE + 5  # engine slack only
    assert processes("sleep", secs) == []
    assert sandbox_containers(docker_client, run.request.name) == []


def test_cancel_to_gone_within_grace_when_the_command_ignores_signals(sandbox, make, docker_client):
    run = Background(sandbox, make, lines=["trap '' INT TERM; echo ready; sleep 1000"])
    run.wait_ready()
    cancelled_at = time.monotonic()
    run.cancel.set()
    outcome = run.result()
    elapsed = run.returned_at - cancelled_at
    assert (outcome.status, outcome.exit_code) == ("cancelled", 137)
    assert GRACE - 0.5 <= elapsed <= GRACE + 5  # SIGKILL came, and only after the grace
    assert sandbox_containers(docker_client, run.request.name) == []


# --- limits and hardening -----------------------------------------------------------------


def test_memory_hog_is_out_of_memory(sandbox, make):
    outcome = sandbox.run(make(["tail /dev/zero"], limits=Limits(memory=16 << 20)))
    assert (outcome.status, outcome.exit_code) == ("out_of_memory", 137)


def test_no_network_unless_asked(sandbox, make, ws):
    probe = "ls /sys/class/net > $DVC_ROOT/net"
    connect = (
        "gw=$(ip route | awk '/default/ {print $3}'); "
        "nc -w 2 ${gw:-192.0.2.1} 9 </dev/null 2> $DVC_ROOT/nc"
    )
    outcome = sandbox.run(make([probe, connect]))
    assert (outcome.status, outcome.failed_line) == ("failed", connect)
    assert (ws / "net").read_text().split() == ["lo"]
    assert "Network is unreachable" in (ws / "nc").read_text()
    sandbox.run(make([probe, connect], limits=Limits(network=True)))
    assert "eth0" in (ws / "net").read_text().split()
    assert "Network is unreachable" not in (ws / "nc").read_text()


def test_root_has_no_capabilities_and_root_fs_is_read_only(sandbox, make, ws):
    script = (
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status > $DVC_ROOT/status; "
        "echo x > /tmp/f && echo tmp-ok >> $DVC_ROOT/log; "
        "chown 1:1 /tmp/f || echo chown-denied >> $DVC_ROOT/log; "
        "ping -c 1 -W 1 127.0.0.1 || echo raw-socket-denied >> $DVC_ROOT/log; "
        "touch /root-fs || echo rootfs-denied >> $DVC_ROOT/log"
    )
    ws.chmod(0o777)  # root without CAP_DAC_OVERRIDE may write only where the mode allows
    outcome = sandbox.run(make([script], user="0:0"))  # root: only the dropped caps stop it
    assert outcome.status == "succeeded", outcome
    assert (ws / "status").read_text().split() == [
        "CapEff:",
        "0000000000000000",
        "NoNewPrivs:",
        "1",
    ]
    assert (ws / "log").read_text().split() == [
        "tmp-ok",
        "chown-denied",
        "raw-socket-denied",
        "rootfs-denied",
    ]


def test_container_is_created_hardened_with_limits_and_gpus(sandbox, make, docker_client, ws):
    limits = Limits.from_meta({"executor": {"memory": "64m", "cpus": 1.5, "pids": 99, "gpus": 1}})
    request = make(["true"], limits=limits, user="1:2", labels={"executor.job": "J1"})
    created = sandbox.create(request)  # a GPU run cannot start here: check what was asked for
    try:
        attrs = docker_client.api.inspect_container(created.id)
    finally:
        docker_client.api.remove_container(created.id, force=True)
    host = attrs["HostConfig"]
    assert host["Init"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == host["MemorySwap"] == 64 << 20
    assert host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 99
    assert host["Tmpfs"] == {"/tmp": f"rw,exec,mode=1777,size={1 << 30}"}
    assert [(m["Type"], m["Source"], m["Target"]) for m in host["Mounts"]] == [
        ("bind", str(ws), "/ws")
    ]
    assert host["Binds"] is None
    assert [(r["Count"], r["Capabilities"]) for r in host["DeviceRequests"]] == [(1, [["gpu"]])]
    assert attrs["Config"]["User"] == "1:2"
    labels = attrs["Config"]["Labels"]
    assert labels["executor"] == "1" and labels["executor.job"] == "J1"
    assert labels["executor.stage"] == "test" and labels["executor.pid"] == str(os.getpid())


def test_a_stale_container_with_the_same_name_is_replaced(sandbox, make):
    request = make(["true"])
    sandbox.create(request)
    assert sandbox.run(request).status == "succeeded"


def test_a_running_container_of_a_live_worker_is_not_taken_over(sandbox, make):
    first = Background(sandbox, make, lines=["echo ready; sleep 1000"])
    first.wait_ready()
    with pytest.raises(SandboxError, match="already running"):
        sandbox.run(make(name=first.request.name))
    first.cancel.set()
    assert first.result().status == "cancelled"


def test_an_image_without_a_shell_is_a_config_error(sandbox, make, docker_client):
    if not docker_client.images.list("executor/no-shell:latest"):
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("hello")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
        docker_client.api.import_image_from_data(data.getvalue(), repository="executor/no-shell")
    with pytest.raises(ConfigError, match=r"cannot run the sandbox's driver, /bin/sh: .*tini"):
        sandbox.run(make(image="executor/no-shell:latest"))


# --- prepared containers: started early, held at the gate ------------------------------------


def test_a_prepared_container_runs_nothing_until_released(sandbox, make, ws, docker_client):
    request = make(["echo ran > ran.txt; cat > stdin.txt"])
    prepared = sandbox.prepare(request)
    [container] = sandbox_containers(docker_client, request.name)
    assert container.status == "running"  # started: the engine's start-up cost is paid
    # Absence cannot be awaited: ungated, the line would have run within milliseconds.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert not (ws / "sub" / "ran.txt").exists(), "the line ran before release"
        time.sleep(0.05)
    outcome = sandbox.release(prepared)
    assert outcome.status == "succeeded", outcome
    assert (ws / "sub" / "ran.txt").read_text() == "ran\n"
    assert (ws / "sub" / "stdin.txt").read_text() == ""  # the gate's line is not the stage's input
    assert sandbox_containers(docker_client, request.name) == []


def test_a_discarded_container_runs_nothing_and_is_gone(sandbox, make, ws, docker_client):
    request = make(["echo ran > ran.txt"])
    prepared = sandbox.prepare(request)
    sandbox.discard(prepared)
    assert sandbox_containers(docker_client, request.name) == []
    assert not (ws / "sub" / "ran.txt").exists()


def test_cancel_before_release_runs_nothing(sandbox, make, ws, docker_client):
    cancel = threading.Event()
    request = make(["echo ran > ran.txt"], io=StageIO(cancel))
    prepared = sandbox.prepare(request)
    cancel.set()
    assert sandbox.release(prepared).status == "cancelled"
    assert not (ws / "sub" / "ran.txt").exists()
    assert sandbox_containers(docker_client, request.name) == []


PREPARER = """
import os, sys
from worker.sandbox.engine import DockerSandbox, Limits, Mount, SandboxRequest
name, image, ws = sys.argv[1:4]
DockerSandbox.from_env(os.environ).prepare(SandboxRequest(
    stage="gated", name=name, image=image, lines=("echo ran > ran.txt",), workdir="/ws",
    mounts=(Mount(ws, "/ws"),), env={}, labels={}, limits=Limits()))
print("prepared", flush=True)
os._exit(0)  # as a SIGKILL would: nothing cleans up
"""


def test_a_prepared_container_of_a_dead_process_exits_without_running(
    busybox_image, ws, docker_client
):
    name = f"executor-test-gate-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:  # under a host of its own: no parallel test's reaper removes it while it is watched
        done = subprocess.run(
            [sys.executable, "-c", as_host(own_host()) + PREPARER, name, busybox_image, str(ws)],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.stdout == b"prepared\n", done.stderr
        [container] = sandbox_containers(docker_client, name)
        assert container.wait(timeout=30)["StatusCode"] == 125  # end of input at the gate
        assert not (ws / "ran.txt").exists()
    finally:
        for container in sandbox_containers(docker_client, name):
            container.remove(force=True)


# --- bad input: a clear error, and no container --------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"lines": ("echo a", "echo \0b")}, ConfigError, "NUL byte"),
        ({"image": "Not An/Image!"}, ConfigError, "not a valid image reference"),
        ({"image": "executor/never-built:1"}, SandboxError, "cannot be pulled"),
        ({"workdir": "/ws/missing"}, WorkspaceError, "does not exist"),
        ({"workdir": "/elsewhere"}, WorkspaceError, "not inside any mount"),
        ({"user": "root"}, ConfigError, "numeric"),
        ({"env": {"A": "x\0y"}}, ConfigError, "NUL byte"),
    ],
)
def test_bad_input_is_rejected_before_any_container(
    sandbox, make, docker_client, change, error, words
):
    request = make(**change)
    with pytest.raises(error, match=words) as info:
        sandbox.run(request)
    assert "\n" not in str(info.value)
    assert sandbox_containers(docker_client, request.name) == []


@pytest.mark.parametrize(
    "meta",
    [{"memory": "2 gigs"}, {"pids": -1}, {"timeout": "abc"}, {"cpus": "lots"}, {"network": "yes"}],
)
def test_bad_limits_are_rejected(meta):
    with pytest.raises(ConfigError, match=f"meta.executor.{next(iter(meta))}"):
        Limits.from_meta({"executor": meta})


# --- reaping ----------------------------------------------------------------------------------

WORKER = """
import os, sys, threading
from executor.stageio import StageIO
from worker.sandbox.engine import DockerSandbox, Limits, Mount, SandboxRequest
name, image, ws, line = sys.argv[1:5]
def on_log(line):
    print(line, flush=True)
DockerSandbox.from_env(os.environ, stop_grace=600).run(SandboxRequest(
    stage="reaped", name=name, image=image, lines=(line,), workdir="/ws",
    mounts=(Mount(ws, "/ws"),), env={}, labels={}, limits=Limits(), io=StageIO(on_log=on_log)))
"""


# The stage's watchdog stops a stage that obeys SIGTERM once its worker is gone; one that
# ignores it would run out the (here 600 s) grace. Either way the container stays behind.
STAGE_LINES = {
    "running": "trap '' TERM; echo started; sleep 1000",
    "exited": "echo started; sleep 1000",
}


@pytest.fixture(params=sorted(STAGE_LINES))
def killed_worker(
    request: pytest.FixtureRequest, busybox_image: str, ws: Path, docker_client: Any
) -> Iterator[tuple[str, str, str]]:
    """A worker process SIGKILLed while its container runs; yields the container's name, the
    state it is left in, and the worker's host name: one of the test's own, so that only the
    test's reap call removes the container, not that of a test running in parallel."""
    state = request.param
    name = f"executor-test-reap-{uuid.uuid4().hex[:12]}"
    host = own_host()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = as_host(host) + WORKER
    proc = subprocess.Popen(
        [sys.executable, "-c", worker, name, busybox_image, str(ws), STAGE_LINES[state]],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if state == "exited":
            [container] = sandbox_containers(docker_client, name)
            assert container.wait(timeout=60)["StatusCode"] == 143  # SIGTERM from the watchdog
        yield name, state, host
    finally:
        proc.kill()
        proc.wait()
        for container in sandbox_containers(docker_client, name):
            container.remove(force=True)


def test_reaper_removes_the_container_of_a_killed_worker(killed_worker, docker_client, monkeypatch):
    name, state, host = killed_worker
    [container] = sandbox_containers(docker_client, name)
    assert container.status == state  # nothing in the worker could remove it
    with monkeypatch.context() as patched:  # on the worker's host: the rest is another host's
        patched.setattr(socket, "gethostname", lambda: host)
        removed = reap(docker_client, is_alive=owner_process_alive)
    assert removed == [name]
    assert sandbox_containers(docker_client, name) == []


def test_tmp_is_a_tmpfs_of_one_gib_unless_configured(docker_client, make, ws):
    for sandbox, kib in ((DockerSandbox(docker_client), 1 << 20),
                         (DockerSandbox(docker_client, tmp_size=64 << 20), 64 << 10)):  # fmt: skip
        outcome = sandbox.run(make(["df -k /tmp | tail -n 1 > df.txt"], user=f"{UID}:{GID}"))
        assert outcome.status == "succeeded", outcome.log_tail
        fields = (ws / "sub/df.txt").read_text().split()
        assert fields[0] == "tmpfs" and int(fields[1]) == kib, fields
