"""Large objects on S3, in parts on a shared pool: multipart uploads whose bytes are verified
against the object's md5 before the upload completes, and ranged downloads hashed in order.

boto3's TransferConfig managers are not used for these: their uploads complete without a
point where the content can be checked first (and moto ignores Content-MD5), and their
downloads start with a HEAD per object.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

from executor.errors import CorruptObject, StoreError
from executor.hashing.digests import Digest
from executor.store.s3client import with_body_retries

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")
MAX_PARTS = 10_000  # S3's limit per multipart upload
CHUNK = 1024 * 1024
CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)


class PartRunner:
    """Runs part transfers on a pool with at most `limit` part buffers in flight across every
    transfer of the store (memory stays bounded)."""

    def __init__(self, pool: ThreadPoolExecutor, limit: int) -> None:
        self._pool = pool
        self._slots = threading.BoundedSemaphore(limit)

    def run_any_order(self, jobs: Iterator[Callable[[], T]]) -> list[T]:
        """Each job's result, in job order; a slot frees as soon as any part is done (no
        part waits behind a slow one). Stops submitting at the first failure."""
        futures: list[Future[T]] = []
        failed = threading.Event()

        def done(future: Future[T]) -> None:
            self._slots.release()
            if future.cancelled() or future.exception() is not None:
                failed.set()

        try:
            while not failed.is_set():
                self._slots.acquire()
                job = self._next_job(jobs)
                if job is None:
                    break
                futures.append(self._pool.submit(job))
                futures[-1].add_done_callback(done)
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            for future in futures:
                with suppress(BaseException):
                    future.exception()
            raise

    def _next_job(self, jobs: Iterator[Callable[[], T]]) -> Callable[[], T] | None:
        """The next job for the slot just taken; at the end (None) the slot is given back."""
        try:
            job = next(jobs, None)
        except BaseException:
            self._slots.release()
            raise
        if job is None:
            self._slots.release()
        return job

    def run_in_order(self, jobs: Iterator[Callable[[], T]], consume: Callable[[T], None]) -> None:
        """Hand each job's result to `consume` in job order (downloads: bytes in order)."""
        window: deque[Future[T]] = deque()
        try:
            while True:
                # Never block on a slot while holding some: consume our oldest part instead,
                # so two large transfers cannot starve each other.
                while not self._slots.acquire(blocking=not window):
                    self._consume_oldest(window, consume)
                job = self._next_job(jobs)
                if job is None:
                    break
                window.append(self._pool.submit(job))
            while window:
                self._consume_oldest(window, consume)
        except BaseException:
            for future in window:
                future.cancel()
                with suppress(BaseException):
                    future.exception()
                self._slots.release()
            raise

    def _consume_oldest(self, window: deque[Future[T]], consume: Callable[[T], None]) -> None:
        future = window[0]
        result = future.result()
        window.popleft()
        self._slots.release()
        consume(result)


def part_size_for(size: int, part_size: int) -> int:
    return max(part_size, -(-size // MAX_PARTS))


def upload_large(
    client: S3Client,
    bucket: str,
    key: str,
    src: Path,
    md5: str,
    part: int,
    runner: PartRunner,
    write_args: Mapping[str, str] | None = None,
    new_digest: Callable[[bytes], Digest] = hashlib.md5,
) -> None:
    """Upload `src` in parts; complete only if the bytes sent hash to `md5` (by `new_digest`:
    md5, or md5-dos2unix for a DVC 2.x object), else abort.

    The md5 runs on its own thread, in order, beside the uploads: parts go out as soon as
    they are read. A part's buffer counts against the store's limit until it is both sent
    and hashed, so memory stays bounded even where the network outruns md5."""
    # CRC32 per part, declared up front as boto3's own transfers do (the parts carry it).
    created = client.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ChecksumAlgorithm="CRC32",
        **(write_args or {}),  # type: ignore[arg-type]
    )
    upload_id = created["UploadId"]
    digest = new_digest(b"")
    try:
        with open(src, "rb") as f, ThreadPoolExecutor(1, "md5") as hasher:

            def jobs() -> Iterator[Callable[[], CompletedPartTypeDef]]:
                for number in itertools.count(1):
                    chunk = f.read(part)
                    if not chunk:
                        return
                    hashed = hasher.submit(digest.update, chunk)
                    yield partial(_send_part, client, bucket, key, upload_id, number, chunk, hashed)

            done = runner.run_any_order(jobs())
        if digest.hexdigest() != md5:
            raise CorruptObject(md5, str(src), digest.hexdigest())
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    except BaseException:
        with suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def _send_part(
    client: S3Client,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    chunk: bytes,
    hashed: Future[None],
) -> CompletedPartTypeDef:
    done = _upload_part(client, bucket, key, upload_id, number, chunk)
    hashed.result()
    return done


def _upload_part(
    client: S3Client, bucket: str, key: str, upload_id: str, number: int, chunk: bytes
) -> CompletedPartTypeDef:
    response = client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
    )
    # botocore adds a CRC32 to each part by default; the completion must repeat it.
    done: CompletedPartTypeDef = {"PartNumber": number, "ETag": response["ETag"]}
    for name in CHECKSUMS:
        if name in response:
            done[name] = response[name]  # type: ignore[literal-required]
    return done


def download_rest(
    client: S3Client,
    bucket: str,
    key: str,
    start: int,
    total: int,
    part: int,
    runner: PartRunner,
    write: Callable[[bytes], None],
) -> None:
    """Fetch bytes `start`..`total` in ranged GETs on the pool, handed to `write` in order."""
    jobs = (
        partial(_get_range, client, bucket, key, offset, min(offset + part, total) - 1)
        for offset in range(start, total, part)
    )
    runner.run_in_order(jobs, write)


def _get_range(client: S3Client, bucket: str, key: str, first: int, last: int) -> bytes:
    def read() -> bytes:
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
        return body.read()

    data = with_body_retries(read)
    if len(data) != last - first + 1:
        raise StoreError(f"s3://{bucket}/{key}: short read of bytes {first}-{last}")
    return data


def stream_object(
    client: S3Client,
    bucket: str,
    key: str,
    part_size: int,
    stream_rate: float,
    take: Callable[[bytes], None],
) -> tuple[int, int]:
    """Read the object as one stream (one GET); (bytes read, size). It stops early when,
    after a part's worth, the stream runs slower than `stream_rate` bytes/s: parallel ranged
    GETs then fetch the rest (they pay where each connection is slow, as with S3 over a WAN;
    a fast server serves one stream best). A dropped stream is also finished by ranges."""
    response = client.get_object(Bucket=bucket, Key=key)
    total, body, offset = response["ContentLength"], response["Body"], 0
    started, judged = time.monotonic(), False
    try:
        while offset < total:
            chunk = body.read(CHUNK)
            if not chunk:
                break
            take(chunk)
            offset += len(chunk)
            if not judged and offset >= part_size and total - offset > part_size:
                judged = True
                if offset / max(time.monotonic() - started, 1e-6) < stream_rate:
                    break
    except (ResponseStreamingError, ReadTimeoutError, IncompleteReadError):
        pass
    finally:
        if offset < total:
            body.close()
    return offset, total
