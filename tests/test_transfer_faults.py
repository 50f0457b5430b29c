"""The S3 server dies in the middle of a push and comes back (empty: moto keeps no state).

Whatever happens, the push ends (completed by retries, or failed with a clear error), and
no object is ever visible under its final key with content other than its name says.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from executor.errors import StoreError
from executor.store.local import LocalStore
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from executor.store.tracked import tracked_outputs
from executor.store.transfer import Report, push
from tests.fixtures.s3_server import MotoServer, raw_client
from tests.test_transfer import build_repo

PART = 5 * 1024 * 1024


def test_push_survives_the_server_dying_without_leaving_wrong_content(
    moto_servers: object, tmp_path: Path
) -> None:
    server: MotoServer = moto_servers()  # type: ignore[operator]
    watcher = raw_client(server.endpoint)
    watcher.create_bucket(Bucket="faults")
    root = tmp_path / "repo"
    files = {f"f{i:04d}.bin": os.urandom(2048) for i in range(800)}
    build_repo(root, {"data": files, "big.bin": os.urandom(3 * PART)})
    client = make_client(server.endpoint, region="us-east-1", max_attempts=3)
    store = S3Store(client, "faults", "p", workers=8, part_size=PART)
    outcome: dict[str, Report | StoreError] = {}

    def work() -> None:
        try:
            cache = LocalStore(root / ".dvc/cache")
            outcome["done"] = push(cache, store, tracked_outputs(root), jobs=8)
        except StoreError as exc:
            outcome["error"] = exc

    pushing = threading.Thread(target=work)
    pushing.start()
    seen = 0
    while seen < 100 and pushing.is_alive():  # wait for the first uploads to land
        seen = watcher.list_objects_v2(Bucket="faults", Prefix="p/").get("KeyCount", 0)
    assert pushing.is_alive(), "the push finished before the server could be stopped"
    server.kill()
    server.start()
    watcher.create_bucket(Bucket="faults")
    pushing.join(timeout=240)
    assert not pushing.is_alive()
    store.close()

    if "error" in outcome:  # a clear error: it names the store, and what was being done
        assert str(outcome["error"]).startswith(
            ("cannot reach the S3 endpoint", "S3 refused uploading", "bucket 'faults'")
        ), outcome["error"]
        assert "s3://faults/p" in str(outcome["error"])
    else:
        assert isinstance(outcome["done"], Report) and not outcome["done"].failed
    pages = watcher.get_paginator("list_objects_v2").paginate(Bucket="faults", Prefix="p/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys, "nothing was uploaded after the restart"
    for key in keys:
        body = watcher.get_object(Bucket="faults", Key=key)["Body"].read()
        name = key.removeprefix("p/files/md5/").replace("/", "").removesuffix(".dir")
        assert hashlib.md5(body).hexdigest() == name, key
