"""One contract for every run-cache index (executor.runindex.RunCacheIndex): the store's
own `runs/` with executor's records (a folder, and S3 over real HTTP via moto's server or
MinIO, and via s3s-fs) and a fleet's Redis (`executor.fleet.keys.RunIndex` on a real redis-server).

An index names candidates, which a caller reads and checks in the store: what matters here
is that it names what was added, for that image digest only, and never a name of another
shape that someone else wrote into it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from executor.dvcformat.entry import Entry, build_entry, run_key, run_value
from executor.runindex import RunCacheIndex, StoreIndex
from executor.store.local import LocalStore
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from tests.fixtures.s3_server import Bucket

IMAGE = "executor/busybox:test"
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
# Names of another shape than a run value (64 lowercase hex digits).
MALFORMED = ["nothex", "A" * 64, "0" * 63, "0" * 65, "g" * 64, "0" * 64 + "~", "0" * 64 + " "]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def entry(out: bytes = b"hi\n", cmd: str = "echo hi > out.txt") -> Entry:
    dep = {"path": "in.txt", "hash": "md5", "md5": md5(b"x\n"), "size": 2}
    item = {"path": "out.txt", "hash": "md5", "md5": md5(out), "size": len(out)}
    return build_entry(cmd, [dep], {}, [item])


@dataclass
class Index:
    index: RunCacheIndex
    # Write a name under a key for an image digest behind the index's back, as anyone who
    # can write to the store or to Redis could: (key, value, image digest).
    forge: Callable[[str, str, str], None]


def _record(digest: str) -> bytes:
    return json.dumps({"images": {digest: IMAGE}}).encode()


def _folder(tmp_path: Path) -> Index:
    store = LocalStore(tmp_path / "store")

    def forge(key: str, value: str, digest: str) -> None:
        for rel, data in (
            (f"runs/{key[:2]}/{key}/{value}", b"cmd: echo evil\n"),  # by hand: any name
            (f"executor/runs/{key[:2]}/{key}/{value}.json", _record(digest)),
        ):
            path = store.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return Index(StoreIndex(store), forge)


def _s3(bucket: Bucket) -> Index:
    prefix = "fleet"
    store = S3Store(make_client(bucket.endpoint), bucket.name, prefix, workers=4)

    def forge(key: str, value: str, digest: str) -> None:
        for rel, data in (
            (f"runs/{key[:2]}/{key}/{value}", b"cmd: echo evil\n"),  # by hand: any name
            (f"executor/runs/{key[:2]}/{key}/{value}.json", _record(digest)),
        ):
            bucket.client.put_object(Bucket=bucket.name, Key=f"{prefix}/{rel}", Body=data)

    return Index(StoreIndex(store), forge)


def _redis(url: str) -> Iterator[Index]:
    import redis

    from executor.fleet.keys import RunIndex, index_key

    client = redis.Redis.from_url(url)

    def forge(key: str, value: str, digest: str) -> None:
        client.hset(index_key(key), f"{value}:{digest}", json.dumps({"image": IMAGE}))

    yield Index(RunIndex(client), forge)
    client.close()


@pytest.fixture(params=["folder", "moto", "s3s-fs", "redis"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    if request.param == "folder":
        yield _folder(tmp_path)
    elif request.param in ("moto", "s3s-fs"):
        bucket = "s3_bucket" if request.param == "moto" else "s3s_bucket"
        yield _s3(request.getfixturevalue(bucket))
    else:
        yield from _redis(request.getfixturevalue("redis_url"))


class TestRunCacheIndexContract:
    def test_an_added_entry_is_named_under_its_key_for_its_digest(self, index: Index) -> None:
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        assert index.index.values(run_key(made), DIGEST) == [run_value(made)]

    def test_adding_again_names_it_once(self, index: Index) -> None:
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        index.index.add(made, IMAGE, DIGEST)
        assert index.index.values(run_key(made), DIGEST) == [run_value(made)]

    def test_another_image_digest_is_not_found(self, index: Index) -> None:
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        assert index.index.values(run_key(made), OTHER) == []

    def test_one_entry_made_by_two_images_is_found_for_each(self, index: Index) -> None:
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        index.index.add(made, "executor/busybox:other", OTHER)
        for digest in (DIGEST, OTHER):
            assert index.index.values(run_key(made), digest) == [run_value(made)]

    def test_entries_under_one_key_are_told_apart_by_digest(self, index: Index) -> None:
        first, second, third = entry(b"1\n"), entry(b"2\n"), entry(b"3\n")
        assert run_key(first) == run_key(second) == run_key(third)  # same cmd, deps, outs
        index.index.add(first, IMAGE, DIGEST)
        index.index.add(second, IMAGE, DIGEST)
        index.index.add(third, IMAGE, OTHER)
        key = run_key(first)
        assert sorted(index.index.values(key, DIGEST)) == sorted(
            [run_value(first), run_value(second)]
        )
        assert index.index.values(key, OTHER) == [run_value(third)]

    def test_unknown_keys_give_nothing(self, index: Index) -> None:
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        assert index.index.values(run_key(entry(cmd="echo other > out.txt")), DIGEST) == []
        assert index.index.values("0" * 64, DIGEST) == []

    def test_keys_of_another_shape_give_nothing(self, index: Index) -> None:
        """A key with a trailing slash would list the real key's folder in a folder store."""
        made = entry()
        index.index.add(made, IMAGE, DIGEST)
        key = run_key(made)
        for odd in (key + "/", key + "/.", key.upper(), key[:2], ""):
            assert index.index.values(odd, DIGEST) == [], odd

    def test_malformed_values_written_behind_its_back_are_never_named(self, index: Index) -> None:
        made = entry()
        key = run_key(made)
        for value in MALFORMED:
            index.forge(key, value, DIGEST)
        index.index.add(made, IMAGE, DIGEST)
        assert index.index.values(key, DIGEST) == [run_value(made)]

    def test_a_well_formed_name_written_behind_its_back_is_only_a_candidate(
        self, index: Index
    ) -> None:
        """What an index names is checked in the store before use (RunCache.check); the
        index itself only guarantees the shape and the digest it was written for."""
        key, value = run_key(entry()), "c" * 64
        index.forge(key, value, OTHER)
        assert index.index.values(key, DIGEST) == []
        assert index.index.values(key, OTHER) == [value]


def test_a_record_that_is_not_executors_names_nothing(tmp_path: Path) -> None:
    """The store's index reads its digests from executor's record: one that does not
    parse, or lists no images, names no entry (and a DVC entry without a record none)."""
    store = LocalStore(tmp_path / "store")
    made = entry()
    key, value = run_key(made), run_value(made)
    store.write_run(key, value, b"cmd: echo hi > out.txt\n")
    assert StoreIndex(store).values(key, DIGEST) == []  # DVC's own entry: no image
    for record in (b"{", b"[]", b'{"images": ["' + DIGEST.encode() + b'"]}', b'{"x": 1}'):
        store.write_record(key, value, record)
        assert StoreIndex(store).values(key, DIGEST) == [], record
    store.write_record(key, value, _record(DIGEST))
    assert StoreIndex(store).values(key, DIGEST) == [value]


def test_redis_fields_that_are_not_text_are_never_named(redis_url: str) -> None:
    import redis

    from executor.fleet.keys import RunIndex, index_key

    client = redis.Redis.from_url(redis_url)
    made = entry()
    key = run_key(made)
    client.hset(index_key(key), b"\xff" * 64 + b":" + DIGEST.encode(), b"{}")
    client.hset(index_key(key), run_value(made).encode() + b":" + DIGEST.encode() + b"\xff", b"{}")
    assert RunIndex(client).values(key, DIGEST) == []
    client.close()
