"""A bucket and key prefix on one client: where an S3 store's keys are, and the plain
requests its objects and its run-cache share, botocore's errors turned into ours."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from executor.store.s3client import MISSING, error_code, translated, with_body_retries
from executor.store.s3list import head

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef


class S3Bucket:
    """Keys under `s3://name/prefix`, reached through a client made at the first request."""

    def __init__(
        self,
        client: S3Client | Callable[[], S3Client],
        name: str,
        prefix: str = "",
        write_args: Mapping[str, str] | None = None,
    ) -> None:
        # A factory defers boto3 (a third of a second to import and set up) until a request
        # is needed: a pull with everything already local makes none.
        self._client = None if callable(client) else client
        self._factory = client if callable(client) else None
        self._client_lock = threading.Lock()
        self.name = name
        self.prefix = prefix.strip("/")
        self.url = f"s3://{name}/{self.prefix}".rstrip("/")
        self.write_args = dict(write_args or {})  # encryption, ACL: on every write

    @property
    def client(self) -> S3Client:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    assert self._factory is not None
                    self._client = self._factory()
        return self._client

    def key(self, rel: str) -> str:
        """The bucket key of `rel`, a key relative to the prefix."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def errors(self, what: str, oid: str | None = None) -> AbstractContextManager[None]:
        """Translate botocore's errors raised while doing `what` (about object `oid`)."""
        return translated(self.url, str(self.client.meta.endpoint_url), what, oid)

    def head(self, key: str) -> bool:
        """Whether `key` exists (one HEAD)."""
        return head(self.client, self.name, key)

    def put(self, key: str, data: bytes, content_md5: bytes | None = None) -> None:
        """Write `data` under `key` (`content_md5`: its md5, base64, if already known)."""
        if content_md5 is None:
            content_md5 = base64.b64encode(hashlib.md5(data).digest())
        self.client.put_object(
            Bucket=self.name,
            Key=key,
            Body=data,
            ContentMD5=content_md5.decode(),
            **self.write_args,  # type: ignore[arg-type]
        )

    def read(self, key: str) -> bytes | None:
        """The bytes under `key`, or None if there are none."""

        def read() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
            except ClientError as exc:
                if error_code(exc) in MISSING:
                    return None
                raise

        with self.errors(f"reading {key}"):
            return with_body_retries(read)

    def list(self, prefix: str) -> Iterator[ObjectTypeDef]:
        """Every object whose key starts with `prefix` (a bucket key, page by page)."""
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.name, Prefix=prefix):
            yield from page.get("Contents", [])
