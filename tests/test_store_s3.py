"""What only the S3 adapter has: requests per object, clear errors, multipart hygiene; on
moto and on s3s-fs (a second S3 implementation) where a test's bucket is on_every_s3."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from executor.errors import CorruptObject, StoreAccessDenied, StoreNotFound, StoreUnreachable
from executor.settings import Settings
from executor.store.open import open_store
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from tests.fixtures.ports import free_port
from tests.fixtures.s3_server import Bucket, MotoServer
from tests.fixtures.s3s_server import S3sServer, on_every_s3

PART = 5 * 1024 * 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def counting(store: S3Store) -> Counter[str]:
    """Count the API calls the store's client makes (botocore's own event hooks)."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    store.client.meta.events.register("before-call.s3", count)
    return calls


@pytest.fixture()
def store(s3_bucket: Bucket) -> S3Store:
    return S3Store(
        make_client(s3_bucket.endpoint), s3_bucket.name, "pfx", workers=8, part_size=PART
    )


@on_every_s3()
def test_many_objects_are_checked_by_listing_not_one_head_each(store: S3Store) -> None:
    blobs = [f"blob {i}".encode() for i in range(600)]
    for blob in blobs[:300]:
        store.put_bytes(md5(blob), blob, check=False)
    calls = counting(store)
    assert store.exists_many(md5(b) for b in blobs) == {md5(b) for b in blobs[:300]}
    assert calls["HeadObject"] == 0
    assert 1 <= calls["ListObjectsV2"] <= 8  # one page per parallel shard here
    calls.clear()
    assert store.exists_many(md5(b) for b in blobs[298:302]) == {md5(blobs[298]), md5(blobs[299])}
    assert calls == Counter({"ListObjectsV2": 1})  # one page answers all four
    calls.clear()
    assert store.exists_many([md5(blobs[0]), md5(blobs[599])]) == {md5(blobs[0])}
    assert calls == Counter({"HeadObject": 2})


@on_every_s3()
def test_wanted_keys_sparse_among_many_are_asked_by_head(store: S3Store, s3_bucket: Bucket) -> None:
    others = [md5(f"other {i}".encode()) for i in range(1100)]  # more than one page
    with ThreadPoolExecutor(16) as pool:
        for oid in others:
            key = f"pfx/files/md5/{oid[:2]}/{oid[2:]}"
            pool.submit(s3_bucket.client.put_object, Bucket=s3_bucket.name, Key=key, Body=b"")
    low, high = "0" * 32, "f" * 32  # the first page starts at `low` and ends far before `high`
    calls = counting(store)
    assert store.exists_many([low, high, others[7]]) == {others[7]}
    assert calls["ListObjectsV2"] == 1 and calls["HeadObject"] <= 2


@on_every_s3()
def test_one_request_per_small_object_moved(store: S3Store, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 4096)
    calls = counting(store)
    store.put_file(md5(src.read_bytes()), src, check=False)
    store.get_file(md5(src.read_bytes()), tmp_path / "g")
    assert calls == Counter({"PutObject": 1, "GetObject": 1})


@on_every_s3()
def test_a_slow_stream_hands_the_rest_to_parallel_ranged_gets(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    client = make_client(s3_bucket.endpoint)
    # No stream is too slow for `fast`, every stream is for `slow`, whatever the machine's load.
    fast = S3Store(client, s3_bucket.name, "pfx", workers=4, part_size=PART, stream_rate=0)
    slow = S3Store(client, s3_bucket.name, "pfx", workers=4, part_size=PART, stream_rate=1e18)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 * PART + 7))
    fast.put_file(md5(src.read_bytes()), src)
    # the slow stream stops after one part; three ranged GETs fetch the other 2 parts + 7 bytes
    for store, gets in ((fast, 1), (slow, 4)):
        calls = counting(store)
        store.get_file(md5(src.read_bytes()), tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == src.read_bytes()
        assert calls == Counter({"GetObject": gets})


@on_every_s3(s3s_lacks="ListMultipartUploads (501 NotImplemented)")
def test_rejected_multipart_upload_leaves_nothing_behind(
    store: S3Store, s3_bucket: Bucket, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(2 * PART + 1))
    with pytest.raises(CorruptObject):
        store.put_file(md5(b"not this content"), src)
    assert s3_bucket.keys() == []
    uploads = s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name)
    assert uploads.get("Uploads", []) == []


@on_every_s3(s3s_lacks="NoSuchBucket for PutObject: it makes the missing bucket's folder")
def test_missing_bucket_is_a_clear_final_error(s3_bucket: Bucket) -> None:
    store = open_store("s3://no-such-bucket-here/x", Settings(s3_endpoint_url=s3_bucket.endpoint))
    with pytest.raises(StoreNotFound, match="bucket 'no-such-bucket-here' does not exist"):
        store.exists_many(md5(bytes([i])) for i in range(100))
    with pytest.raises(StoreNotFound, match="bucket 'no-such-bucket-here' does not exist"):
        store.put_bytes(md5(b"a"), b"a")


def test_unreachable_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens, nor will for a minute
    client = make_client(endpoint, region="us-east-1", max_attempts=1)
    store = S3Store(client, "bucket", "p")
    with pytest.raises(StoreUnreachable, match=f"cannot reach the S3 endpoint {endpoint}"):
        store.exists(md5(b"a"))


def test_forbidden_is_a_clear_final_error(
    moto_servers: Callable[..., MotoServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = moto_servers(INITIAL_NO_AUTH_ACTION_COUNT="0")  # moto checks keys: ours are unknown
    store = open_store("s3://bucket/p", Settings(s3_endpoint_url=server.endpoint))
    with pytest.raises(StoreAccessDenied, match="access denied to s3://bucket/p") as caught:
        store.put_bytes(md5(b"a"), b"a")
    assert "testing" not in str(caught.value)  # credentials never appear in messages


def test_a_wrong_secret_is_refused_by_a_server_that_checks_signatures(
    s3s_server: S3sServer, s3s_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + s3s_server.secret)
    store = open_store(s3s_bucket.url("p"), Settings(s3_endpoint_url=s3s_bucket.endpoint))
    with pytest.raises(StoreAccessDenied, match="access denied to s3://") as caught:
        store.put_bytes(md5(b"a"), b"a", check=False)
    assert "SignatureDoesNotMatch" in str(caught.value)
    assert s3s_server.secret not in str(caught.value)
    assert s3s_bucket.keys() == []


@on_every_s3()
def test_no_credentials_is_a_clear_final_error(
    s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_store(s3_bucket.url("p"), Settings(s3_endpoint_url=s3_bucket.endpoint))
    with pytest.raises(StoreAccessDenied, match="no usable AWS credentials"):
        store.exists(md5(b"a"))


@on_every_s3()
def test_endpoint_in_the_url_wins_over_settings(s3_bucket: Bucket) -> None:
    url = f"{s3_bucket.url('p')}?endpoint_url={s3_bucket.endpoint}"
    store = open_store(url, Settings(s3_endpoint_url="http://127.0.0.1:9"))
    store.put_bytes(md5(b"a"), b"a")
    assert s3_bucket.keys() == [f"p/files/md5/{md5(b'a')[:2]}/{md5(b'a')[2:]}"]
