"""What the S3 client puts on the wire for uploads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from tests.fixtures.s3_server import Bucket

PART = 5 * 1024 * 1024


def test_uploads_carry_a_checked_checksum_and_no_payload_sha256(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = S3Store(make_client(s3_bucket.endpoint), s3_bucket.name, "pfx", part_size=PART)
    sent: list[tuple[str, dict[str, str]]] = []

    def record(request: Any, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        sent.append((request.method, headers))

    store.client.meta.events.register("before-send.s3", record)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * 4096)
    big.write_bytes(os.urandom(2 * PART + 1))
    for src in (small, big):
        store.put_file(hashlib.md5(src.read_bytes()).hexdigest(), src, check=False)
    bodies = [headers for method, headers in sent if method == "PUT"]
    assert len(bodies) == 1 + 3  # one PutObject, three UploadPart
    for headers in bodies:
        assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert "content-md5" in headers or "x-amz-checksum-crc32" in headers
