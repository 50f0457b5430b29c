"""moto's S3 server as a process on a free 127.0.0.1 port, counting the requests it serves.

werkzeug logs each request (`"PUT /bucket/key HTTP/1.1" 200`) before the response goes out, so
once a command has finished, a marker request sent after it and seen in the log means every
request of the command has been counted: no sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

FAKE_KEYS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[\d.]+" (\d+)')
READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """A running moto_server; `counting()` yields the requests made inside the block."""

    def __init__(self, env: Mapping[str, str]) -> None:
        binary = shutil.which("moto_server")
        if binary is None:
            raise RuntimeError("moto_server is missing: pip install 'moto[server]'")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._seen = threading.Condition()
        self._counts: Counter[str] = Counter()
        self._markers: set[str] = set()
        self._log: list[str] = []
        self._up = False
        self._proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**env, **FAKE_KEYS, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._drain, daemon=True).start()
        with self._seen:
            if not self._seen.wait_for(lambda: self._up, READY_TIMEOUT):
                self.stop()
                raise RuntimeError(f"moto_server did not start: {''.join(self._log[-20:])}")
        if self._proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {''.join(self._log[-20:])}")
        self.client = make_client(self.endpoint)

    def _drain(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace")
            with self._seen:
                if "Running on" in line:
                    self._up = True
                found = REQUEST.search(line)
                if found and "/bench-marker-" in found.group(2):
                    self._markers.add(found.group(2).split("bench-marker-", 1)[1].split("?")[0])
                elif found:
                    self._counts[_kind(found.group(1), found.group(2))] += 1
                elif len(self._log) < 200:
                    self._log.append(line)
                self._seen.notify_all()
        with self._seen:
            self._up = True  # exited: wake whoever waits
            self._seen.notify_all()

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        """Requests by kind (PUT, GET, HEAD, LIST, POST, DELETE) made inside the block."""
        counts: Counter[str] = Counter()
        self._sync()
        with self._seen:
            start = Counter(self._counts)
        yield counts
        self._sync()
        with self._seen:
            counts.update(self._counts - start)

    def _sync(self) -> None:
        marker = uuid.uuid4().hex
        with suppress(Exception):  # the 404 is the point: it is logged all the same
            self.client.head_bucket(Bucket=f"bench-marker-{marker}")
        with self._seen:
            if not self._seen.wait_for(lambda: marker in self._markers, READY_TIMEOUT):
                raise RuntimeError("moto_server stopped logging requests")

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:20]}"
        self.client.create_bucket(Bucket=name)
        return name

    def drop_bucket(self, name: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=name)
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=name, Delete={"Objects": keys[i : i + 1000]})
        self.client.delete_bucket(Bucket=name)

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()


def _kind(method: str, path: str) -> str:
    if method == "GET" and ("list-type=" in path or path.rstrip("/").count("/") <= 1):
        return "LIST"
    return method


def make_client(endpoint: str, pool: int = 32) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        s3={"addressing_style": "path"},
        max_pool_connections=pool,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=config,
        aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
    )
