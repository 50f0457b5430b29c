"""A fleet whose Redis speaks only TLS and wants a password (`rediss://`, as deploy/ sets it
up): redis-server with a self-signed certificate made here with openssl, a real worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.fleet import Fleet, one_stage, start_worker, stop_worker, submit
from tests.fixtures.ports import free_port
from tests.fixtures.s3_server import Bucket

PASSWORD = "tls-pa55-word"


@pytest.fixture()
def tls_redis_url(tmp_path: Path) -> Iterator[str]:
    binary, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if binary is None or openssl is None:
        message = "redis-server and openssl are needed: run scripts/setup"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI installs them: a skip there would hide a broken setup
        pytest.skip(message)
    import redis

    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server with TLS did not start"
                assert time.monotonic() < deadline, "redis-server with TLS did not answer"
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_submit_and_a_worker_work_over_tls_and_never_print_the_password(
    make_repo: Callable[..., Path], tls_redis_url: str, s3_bucket: Bucket,
    busybox_image: str, tmp_path: Path,
) -> None:  # fmt: skip
    env = {
        "EXECUTOR_REDIS_URL": tls_redis_url,
        "EXECUTOR_STORE": s3_bucket.url("fleet"),
        "EXECUTOR_S3_ENDPOINT_URL": s3_bucket.endpoint,
    }
    log = tmp_path / "worker.log"
    worker = start_worker(env, tmp_path / "home", log)
    fleet = Fleet(tls_redis_url, s3_bucket.url("fleet"), env, worker, log)
    try:
        fleet.wait_for_workers(1)
        root = make_repo(one_stage("s", "cat in.txt > out.txt"))
        done = submit(root, fleet, busybox_image)
        assert done.returncode == 0, done.stderr + fleet.worker_log()
        assert (root / "out.txt").read_text() == "x\n"
        wrong = {**env, "EXECUTOR_REDIS_URL": tls_redis_url.replace(PASSWORD, "not-it")}
        refused = submit(root, Fleet(wrong["EXECUTOR_REDIS_URL"], fleet.store_url, wrong,
                                     worker, log), busybox_image, "--force")  # fmt: skip
        assert refused.returncode == 3, refused.stderr
        assert "not-it" not in refused.stderr and ":***@127.0.0.1" in refused.stderr
    finally:
        stop_worker(worker)
    seen = done.stdout + done.stderr + refused.stdout + fleet.worker_log()
    assert PASSWORD not in seen
