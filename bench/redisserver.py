"""redis-server as a process on a free 127.0.0.1 port, without persistence, for fleet runs."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench.s3server import free_port

READY_TIMEOUT = 30.0


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def flush(self) -> None:
        self.client.flushdb()

    def workers(self) -> int:
        """RQ workers registered now."""
        from rq import Worker

        return len(Worker.all(connection=self.client))

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
