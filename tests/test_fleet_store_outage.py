"""A worker's store goes away and comes back: the job waits it out within the worker's
patience instead of throwing away a stage that already ran; what is an answer rather than an
outage (a missing object) is not retried. Real moto_server processes, redis-server, Docker."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from executor.errors import ConfigError, ObjectMissing, StoreUnreachable
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from tests.fixtures.fleet import (
    Fleet,
    fleet_env,
    one_stage,
    start_worker,
    stop_worker,
    submit_until_started,
)
from tests.fixtures.ports import free_port
from tests.fixtures.s3_server import MotoServer, raw_client
from worker.config import WorkerConfig
from worker.patientstore import PatientStore

MISSING_MD5 = "0" * 32


def _wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 180
    while not ready():
        assert proc.poll() is None, f"submit ended before {what}: {log.read_text()}"
        assert time.monotonic() < deadline, f"no {what}: {log.read_text()}"
        time.sleep(0.05)


def test_a_store_outage_after_the_stage_ran_is_waited_out(
    make_repo: Callable[..., Path],
    moto_servers: Callable[..., MotoServer],
    redis_url: str,
    busybox_image: str,
    tmp_path: Path,
) -> None:
    server = moto_servers()
    raw_client(server.endpoint).create_bucket(Bucket="outage")
    # The store is reached through a gate: closed, it is an outage (connections refused, open
    # ones cut); opened again, the store is back with what it held. (A killed moto restarts
    # empty: a retry landing before the test had made the bucket again failed the job.)
    gate = Gate(server.port)
    env = fleet_env(redis_url, "s3://outage/fleet", gate.endpoint)
    log, home = tmp_path / "worker.log", tmp_path / "worker-home"
    fleet = Fleet(redis_url, env["EXECUTOR_STORE"], env, start_worker(env, home, log), log)
    try:
        fleet.wait_for_workers(1)
        # The stage holds until the test has taken the store away, so its outputs meet the outage.
        cmd = "echo started; until [ -e go ]; do sleep 0.05; done; cat in.txt > out.txt"
        root = make_repo(one_stage("train", cmd))
        proc = submit_until_started(root, fleet, busybox_image)
        workspaces: list[Path] = []

        def workspace_seen() -> bool:
            workspaces[:] = list(home.glob("jobs/*/ws"))
            return bool(workspaces)

        _wait_for("workspace", workspace_seen, proc, log)
        gate.close()
        (workspaces[0] / "go").write_text("")
        _wait_for("retry", lambda: "store unreachable while" in fleet.worker_log(), proc, log)
        gate.open()
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, out + err + fleet.worker_log()
        assert (root / "out.txt").read_text() == "x\n"
        assert "out.txt" in (root / "dvc.lock").read_text()
        assert fleet.jobs_run() == 1  # waited out, not run again
        keys = [
            o["Key"]
            for o in raw_client(server.endpoint)
            .list_objects_v2(Bucket="outage", Prefix="fleet/")
            .get("Contents", [])
        ]
        assert any("/runs/" in k for k in keys), keys  # the entry landed after the outage
    finally:
        for workspace in home.glob("jobs/*/ws"):  # a stage still waiting ends
            (workspace / "go").write_text("")
        stop_worker(fleet.worker)
        gate.close()


class Gate:
    """A TCP forwarder from a free port of its own to `target` on 127.0.0.1, open at first.
    `close()` refuses new connections and cuts the open ones; `open()` listens again on the
    same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._sockets: list[socket.socket] = []  # of the connections, cut by close()
        self._closing = threading.Event()
        self._accepting: threading.Thread | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._closing.clear()
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def close(self) -> None:
        if self._accepting is None:
            return
        self._closing.set()
        self._accepting.join()  # the listener is closed: connections are refused
        self._accepting = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._closing.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                except OSError:
                    client.close()
                    continue
                self._sockets += [client, upstream]
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _dead_store() -> S3Store:
    """A store whose endpoint nobody listens on (one attempt per request)."""
    client = make_client(f"http://127.0.0.1:{free_port()}", region="us-east-1", max_attempts=1)
    return S3Store(client, "nowhere", "p")


@pytest.mark.usefixtures("moto_servers")  # fake credentials in the environment
def test_patience_runs_out_with_the_stores_own_error(caplog: pytest.LogCaptureFixture) -> None:
    store = PatientStore(_dead_store(), patience=1.0)
    with caplog.at_level(logging.WARNING), pytest.raises(StoreUnreachable):
        store.get_bytes(MISSING_MD5)
    assert "retrying in" in caplog.text
    store.close()


@pytest.mark.usefixtures("moto_servers")
def test_a_cancel_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    store = PatientStore(_dead_store(), patience=3600.0, stop=stop)
    failed: list[BaseException] = []

    def fetch() -> None:
        try:
            store.exists(MISSING_MD5)
        except StoreUnreachable as exc:
            failed.append(exc)

    fetching = threading.Thread(target=fetch)
    fetching.start()
    stop.set()
    fetching.join(timeout=60)  # an hour of patience, ended by the cancel
    assert not fetching.is_alive() and failed
    store.close()


def test_a_missing_object_is_an_answer_not_an_outage(
    moto_servers: Callable[..., MotoServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = moto_servers()
    raw_client(server.endpoint).create_bucket(Bucket="answers")
    client = make_client(server.endpoint, region="us-east-1")
    store = PatientStore(S3Store(client, "answers", "p"), patience=3600.0)
    with caplog.at_level(logging.WARNING), pytest.raises(ObjectMissing):
        store.get_bytes(MISSING_MD5)
    assert "retrying" not in caplog.text
    store.close()


@pytest.mark.parametrize("raw", ["soon", "-1", "inf", "nan"])
def test_a_bad_store_patience_is_a_config_error(raw: str) -> None:
    env = {"EXECUTOR_STORE": "s3://b/p", "EXECUTOR_WORKER_STORE_PATIENCE": raw}
    with pytest.raises(ConfigError, match="EXECUTOR_WORKER_STORE_PATIENCE"):
        WorkerConfig.from_env(env)


def test_store_patience_is_read_from_the_environment() -> None:
    env = {"EXECUTOR_STORE": "s3://b/p", "EXECUTOR_WORKER_STORE_PATIENCE": "2.5"}
    assert WorkerConfig.from_env(env).store_patience == 2.5
