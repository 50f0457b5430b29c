"""Objects and run-cache entries under `s3://bucket/prefix`, in DVC's remote layout, so
`dvc push`/`dvc pull` with the same remote URL see exactly what executor stores."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from executor.durable import publish
from executor.errors import CorruptObject, StoreError
from executor.hashing.digests import Digest, Dos2UnixMd5
from executor.store.base import (
    content_md5,
    create,
    legacy_object_key,
    object_key,
    temporary_beside,
)
from executor.store.runparts import RunsFromPart
from executor.store.s3bucket import S3Bucket
from executor.store.s3list import scan_present
from executor.store.s3parts import (
    PartRunner,
    download_rest,
    part_size_for,
    stream_object,
    upload_large,
)
from executor.store.s3runs import S3Runs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

PART_SIZE = 8 * 1024 * 1024  # larger objects go in parts, in parallel (as boto3 does)
STREAM_RATE = 96 * 1024 * 1024  # bytes/s: a download stream slower than this goes parallel
HEAD_LIMIT = 2  # up to this many objects are checked by HEAD, more by listing
ASK_FIRST = 64 * 1024  # bytes above which an upload asks whether the store has it
SHARD_KEYS = 64  # at least this many wanted keys per listing shard; shards run in parallel


class S3Store(RunsFromPart):
    """A bucket (and key prefix) holding DVC objects and run-cache entries."""

    def __init__(
        self,
        client: S3Client | Callable[[], S3Client],
        bucket: str,
        prefix: str = "",
        *,
        workers: int = 16,
        part_size: int = PART_SIZE,
        stream_rate: float = STREAM_RATE,
        write_args: Mapping[str, str] | None = None,
    ) -> None:
        self._bucket = S3Bucket(client, bucket, prefix, write_args)
        self._runs = S3Runs(self._bucket)
        self.url = self._bucket.url
        self.workers = max(1, workers)
        self.part_size = part_size
        self.stream_rate = stream_rate
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="s3-store")
        self._parts = PartRunner(self._pool, self.workers)
        self._object_key = object_key  # where objects live, and what names them:
        self._objects = "files/md5/"
        self._new_digest: Callable[[bytes], Digest] = hashlib.md5

    def legacy_view(self) -> S3Store:
        view = copy.copy(self)  # the same bucket: one client for both
        view._object_key = legacy_object_key
        view._objects = ""
        view._new_digest = Dos2UnixMd5
        return view

    @property
    def client(self) -> S3Client:
        return self._bucket.client

    def remove_all(self) -> None:
        bucket = self._bucket
        with bucket.errors("removing the store's objects"):
            keys = [o["Key"] for o in bucket.list(bucket.key(""))]
            for start in range(0, len(keys), 1000):  # S3's batch limit
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": k} for k in keys[start : start + 1000]
                ]
                bucket.client.delete_objects(Bucket=bucket.name, Delete={"Objects": batch})

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # objects

    def exists(self, md5: str) -> bool:
        with self._bucket.errors(f"checking object {md5}"):
            return self._bucket.head(self._bucket.key(self._object_key(md5)))

    def exists_many(self, md5s: Iterable[str]) -> set[str]:
        by_key = {self._bucket.key(self._object_key(m)): m for m in md5s}
        keys = sorted(by_key)
        if not keys:
            return set()
        with self._bucket.errors(f"checking {len(keys)} objects"):
            if len(keys) <= HEAD_LIMIT:
                heads = self._pool.map(self._bucket.head, keys)
                present = [k for k, ok in zip(keys, heads, strict=True) if ok]
            else:
                size = max(SHARD_KEYS, -(-len(keys) // self.workers))
                shards = [keys[i : i + size] for i in range(0, len(keys), size)]
                where = self._bucket.key(self._objects)
                scan = partial(scan_present, self.client, self._bucket.name, where)
                present = [k for found in self._pool.map(scan, shards) for k in found]
        return {by_key[k] for k in present}

    def put_file(
        self, md5: str, src: Path, *, check: bool = True, seen: os.stat_result | None = None
    ) -> None:
        # `seen` is not used: the upload reads every byte anyway, and its md5 is checked.
        try:
            size = os.path.getsize(src)
        except OSError as exc:
            raise StoreError(f"cannot read {src} to store it: {exc.strerror}") from exc
        # A small object is sent without asking first: the HEAD would cost as much as the
        # PUT, which rewrites the same bytes under the same name if it was there.
        if check and size > ASK_FIRST and self.exists(md5):
            return
        try:
            data = src.read_bytes() if size <= self.part_size else None
        except OSError as exc:
            raise StoreError(f"cannot read {src} to store it: {exc.strerror}") from exc
        with self._bucket.errors(f"uploading object {md5}"):
            if data is not None:
                self._put_verified(md5, data, str(src))
                return
            part = part_size_for(size, self.part_size)
            key = self._bucket.key(self._object_key(md5))
            upload_large(
                self.client,
                self._bucket.name,
                key,
                src,
                content_md5(md5),
                part,
                self._parts,
                self._bucket.write_args,
                self._new_digest,
            )

    def put_bytes(self, md5: str, data: bytes, *, check: bool = True) -> None:
        if check and self.exists(md5):
            return
        with self._bucket.errors(f"uploading object {md5}"):
            self._put_verified(md5, data, "the data given")

    def _put_verified(self, md5: str, data: bytes, where: str) -> None:
        actual = self._new_digest(data).hexdigest()
        if actual != content_md5(md5):
            raise CorruptObject(md5, where, actual)
        # Content-MD5 makes S3 reject a body damaged on the way (moto does not check it).
        sent = bytes.fromhex(actual) if self._new_digest is hashlib.md5 else None
        key = self._bucket.key(self._object_key(md5))
        self._bucket.put(key, data, base64.b64encode(sent) if sent else None)

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        tmp = temporary_beside(dest)
        try:
            with os.fdopen(create(tmp, mode), "wb") as f:
                self._fetch(md5, f.write)
                f.flush()
                os.fsync(f.fileno())
            publish(tmp, dest, synced=True)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, md5: str) -> bytes:
        chunks: list[bytes] = []
        self._fetch(md5, chunks.append)
        return b"".join(chunks)

    def _fetch(self, md5: str, write: Callable[[bytes], object]) -> None:
        """Hand the object's bytes to `write` in order; CorruptObject if they do not hash to
        its name (the caller discards what it wrote)."""
        key = self._bucket.key(self._object_key(md5))
        digest = self._new_digest(b"")

        def take(data: bytes) -> None:
            digest.update(data)
            write(data)

        with self._bucket.errors(f"downloading object {md5}", md5):
            args0 = (self.client, self._bucket.name, key, self.part_size, self.stream_rate)
            offset, total = stream_object(*args0, take)
            if offset < total:
                part = part_size_for(total - offset, self.part_size)
                args = (self.client, self._bucket.name, key, offset, total, part)
                download_rest(*args, self._parts, take)
        if digest.hexdigest() != content_md5(md5):
            where = f"{self.url}/{self._object_key(md5)}"
            raise CorruptObject(md5, where, digest.hexdigest())
