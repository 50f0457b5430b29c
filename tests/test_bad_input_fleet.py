"""The fleet's bad input (issue 16): `executor submit` and `executor-worker` given URLs that
are not Redis URLs (exit 2), a Redis that is not there or is another service (exit 3), and
jobs put into Redis by hand. Each is one line, no traceback, and nothing in the repository
changes; a worker given garbage jobs refuses them and keeps serving.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import run_cli
from tests.oracle_projects import Project, build, snapshot

PROJECT = Project(
    files={
        "in.txt": "hello\n",
        "dvc.yaml": "stages:\n  s:\n    cmd: cat in.txt > o.txt\n    deps:\n      - in.txt\n"
        "    outs:\n      - o.txt\n",
    }
)


@contextlib.contextmanager
def tcp_service(reply: bytes | None) -> Iterator[int]:
    """A TCP port that is not Redis: it answers `reply` (None: closes at once)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                if reply is not None:
                    with contextlib.suppress(OSError):
                        conn.settimeout(2)
                        conn.recv(4096)
                        conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()
        thread.join(5)


def submit(root: Path, image: str, redis_url: str, store: Path) -> Any:
    env = {"EXECUTOR_IMAGE": image, "EXECUTOR_REDIS_URL": redis_url, "EXECUTOR_STORE": str(store)}
    return run_cli([sys.executable, "-m", "executor", "submit"], root, env, timeout=120)


def worker(home: Path, redis_url: str, store: Path, *args: str) -> Any:
    env = {
        "EXECUTOR_REDIS_URL": redis_url,
        "EXECUTOR_STORE": str(store),
        "EXECUTOR_WORKER_DIR": str(home),
    }
    return run_cli([sys.executable, "-m", "worker", "--burst", *args], home.parent, env, 120)


def state(root: Path) -> dict[str, object]:
    """What must not change: snapshot() without the empty `.dvc/cache` folder that opening
    the workspace makes (git ignores it, and it holds nothing)."""
    found = snapshot(root)
    tree = found["workspace"]
    assert isinstance(tree, dict)
    found["workspace"] = {k: v for k, v in tree.items() if k != ".dvc/cache"}
    return found


def assert_one_line(done: Any, code: int, *names: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("ERROR: ")
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


MALFORMED = {
    "no_scheme": ("nonsense", "Redis URL"),
    "wrong_scheme": ("ftp://127.0.0.1/0", "Redis URL"),
    "port_out_of_range": ("redis://127.0.0.1:99999/0", "Port out of range"),
    "port_not_a_number": ("redis://127.0.0.1:six/0", "Port"),
    "database_not_a_number": ("redis://127.0.0.1:6379/zero", "'zero' is not a number"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_redis_url_is_input(case: str, tmp_path: Path, busybox_image: str) -> None:
    url, says = MALFORMED[case]
    root = build(tmp_path / "repo", PROJECT)
    before = state(root)
    assert_one_line(submit(root, busybox_image, url, tmp_path / "store"), 2, says)
    assert state(root) == before
    assert not (tmp_path / "store").exists()
    assert_one_line(worker(tmp_path / "home", url, tmp_path / "store"), 2, says)


def test_a_password_in_a_malformed_url_is_not_shown(tmp_path: Path, busybox_image: str) -> None:
    root = build(tmp_path / "repo", PROJECT)
    url = "redis://:hunter2@127.0.0.1:99999/0"
    done = submit(root, busybox_image, url, tmp_path / "store")
    assert_one_line(done, 2, "Redis URL")
    assert "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"])
def test_a_port_that_is_not_redis_is_infrastructure(
    reply: bytes | None, tmp_path: Path, busybox_image: str
) -> None:
    """A port that closes every connection, or an HTTP server (another service)."""
    root = build(tmp_path / "repo", PROJECT)
    before = state(root)
    with tcp_service(reply) as port:
        url = f"redis://127.0.0.1:{port}/0"
        assert_one_line(submit(root, busybox_image, url, tmp_path / "store"), 3, "cannot reach")
        assert_one_line(worker(tmp_path / "home", url, tmp_path / "store"), 3, "cannot reach")
    assert state(root) == before


def test_nobody_listening_is_infrastructure(tmp_path: Path, busybox_image: str) -> None:
    from tests.fixtures.ports import free_port

    root = build(tmp_path / "repo", PROJECT)
    before = state(root)
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line(submit(root, busybox_image, url, tmp_path / "store"), 3, "cannot reach")
    assert state(root) == before


def _enqueue_garbage(redis_url: str, store: Path) -> list[str]:
    """Jobs nobody should run, put into the default queue by hand; their ids."""
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    from executor.fleet.keys import JOB_FUNCTION

    client = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=client, serializer=JSONSerializer)
    ids = [f"executor-{c * 32}" for c in "abcd"]
    client.rpush("rq:queue:default", "no-such-job")  # an id without a job
    client.hset("rq:job:not-json", mapping={"data": b"\x00\x01", "status": "queued"})
    client.rpush("rq:queue:default", "not-json")
    queue.enqueue("os.system", f"touch {store}/PWNED", job_id=ids[0])
    queue.enqueue(JOB_FUNCTION, "not a spec", job_id=ids[1])
    queue.enqueue(JOB_FUNCTION, {"nonsense": 1}, str(store), job_id=ids[2])
    queue.enqueue(JOB_FUNCTION, {"stage": 5, "cmd": None}, str(store), job_id=ids[3])
    client.close()
    return ids


def test_a_worker_refuses_garbage_jobs_and_keeps_serving(redis_url: str, tmp_path: Path) -> None:
    import redis

    store = tmp_path / "store"
    store.mkdir()
    ids = _enqueue_garbage(redis_url, store)
    done = worker(tmp_path / "home", redis_url, store)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (store / "PWNED").exists()
    client = redis.Redis.from_url(redis_url)
    assert client.llen("rq:queue:default") == 0  # every job was taken and dealt with
    failed = {m.decode() for m in client.zrange("rq:failed:default", 0, -1)}
    finished = {m.decode() for m in client.zrange("rq:finished:default", 0, -1)}
    assert set(ids) <= failed | finished
    assert "done, quitting" in done.stderr  # a burst worker that served the queue to its end
    assert list(store.iterdir()) == []  # no object, no run-cache entry from any of them


def test_a_job_with_a_garbage_date_does_not_stop_the_worker(redis_url: str, tmp_path: Path) -> None:
    import redis

    store = tmp_path / "store"
    store.mkdir()
    client = redis.Redis.from_url(redis_url)
    client.hset("rq:job:bad-date", mapping={"data": b"x", "status": "queued", "created_at": "x"})
    client.rpush("rq:queue:default", "bad-date")
    _enqueue_garbage(redis_url, store)
    done = worker(tmp_path / "home", redis_url, store)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unhandled exception, quitting" not in done.stderr
    assert client.llen("rq:queue:default") == 0
    assert not (store / "PWNED").exists()
