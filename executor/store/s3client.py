"""The one boto3 S3 client a process shares, and botocore's errors turned into ours.

Credentials come from boto3's standard chain (environment, profile, instance role), which is
botocore's: the client is made by botocore's session, as boto3's own Session does, without
importing boto3 and s3transfer (some 40 ms of a command that makes one request); nothing
here reads or logs them.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    ResponseStreamingError,
)

from executor.errors import (
    ConfigError,
    ObjectMissing,
    StoreAccessDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
)
from executor.s3access import S3Access

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.session import Session
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

DENIED = frozenset(
    {
        "403",
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
    }
)
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
BODY_ATTEMPTS = 3  # a dropped connection while reading a body is not retried by botocore


def make_client(
    endpoint_url: str | None,
    *,
    region: str | None = None,
    workers: int = 16,
    max_attempts: int = 5,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    access: S3Access | None = None,
) -> S3Client:
    """A thread-safe client: pooled connections for `workers` threads (plus the store's own
    part and listing threads), retries with backoff and jitter on throttling, 5xx,
    timeouts and dropped connections, path-style addressing for custom endpoints (MinIO).
    `access` adds a profile, keys, TLS settings or timeouts (a DVC remote's options)."""
    access = access or S3Access()
    config = _config(endpoint_url, workers, max_attempts, connect_timeout, read_timeout, access)
    try:
        client = _session(access).create_client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=config,
            use_ssl=access.use_ssl,
            verify=access.verify,
            aws_access_key_id=access.access_key_id,
            aws_secret_access_key=access.secret_access_key,
            aws_session_token=access.session_token,
        )
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS profile '{access.profile}' is not in the AWS config files; "
            "add it (aws configure --profile NAME) or name another one"
        ) from exc
    except ValueError as exc:  # botocore's check of the endpoint URL
        raise ConfigError(
            f"S3 endpoint {endpoint_url!r} is not a usable URL ({exc}); "
            "use e.g. http://127.0.0.1:9000"
        ) from exc
    return cast("S3Client", client)


def _config(
    endpoint_url: str | None,
    workers: int,
    max_attempts: int,
    connect_timeout: float,
    read_timeout: float,
    access: S3Access,
) -> Config:
    """botocore's settings for `make_client` (the timeouts of `access` win)."""
    from botocore.config import Config

    return Config(
        max_pool_connections=max(10, 2 * workers),
        # Not "adaptive": its client-side rate limiter takes one lock per request and per
        # response, which the transfer threads queue on; "standard" also backs off with jitter.
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=access.connect_timeout or connect_timeout,
        read_timeout=access.read_timeout or read_timeout,
        tcp_keepalive=True,
        s3={
            "addressing_style": "path" if endpoint_url else "auto",
            # botocore skips the payload's SHA-256 over https when a checksum header is sent;
            # over plain http (MinIO, moto) it would hash every byte once more. Every upload
            # carries Content-MD5 or a CRC32 the server checks, and objects are named by md5.
            "payload_signing_enabled": False,
        },
    )


def _session(access: S3Access) -> Session:
    """botocore's session with the profile and the config files `access` names."""
    from botocore.session import Session

    session = Session(profile=access.profile)
    # As DVC: the environment's AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE win.
    if access.credentials_file and not os.environ.get("AWS_SHARED_CREDENTIALS_FILE"):
        session.set_config_variable("credentials_file", access.credentials_file)
    if access.config_file and not os.environ.get("AWS_CONFIG_FILE"):
        session.set_config_variable("config_file", access.config_file)
    return session


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


@contextmanager
def translated(url: str, endpoint: str, what: str, oid: str | None = None) -> Iterator[None]:
    """Re-raise botocore's errors as StoreError subclasses whose message says what to fix."""
    try:
        yield
    except ClientError as exc:
        raise _from_client_error(exc, url, what, oid) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StoreAccessDenied(
            f"no usable AWS credentials for {url}: set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({type(exc).__name__})"
        ) from exc
    except (ConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise StoreUnreachable(
            f"cannot reach the S3 endpoint {endpoint} for {url} while {what} (after retries): "
            f"{exc}; check the endpoint (EXECUTOR_S3_ENDPOINT_URL or ?endpoint_url=)"
        ) from exc
    except BotoCoreError as exc:
        raise StoreError(f"S3 error for {url} while {what}: {exc}") from exc


def _from_client_error(exc: ClientError, url: str, what: str, oid: str | None) -> StoreError:
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    bucket = url.removeprefix("s3://").split("/", 1)[0]
    if code == "NoSuchBucket":
        return StoreNotFound(f"bucket '{bucket}' does not exist (store {url}); create it first")
    if code in DENIED or status == 403:
        return StoreAccessDenied(
            f"access denied to {url} while {what} ({code or status}); check the credentials "
            "(AWS_ACCESS_KEY_ID/AWS_PROFILE) and the bucket policy"
        )
    if oid is not None and (code in MISSING or status == 404):
        return ObjectMissing(oid, url)
    message = exc.response.get("Error", {}).get("Message") or ""
    return StoreError(f"S3 refused {what} in {url}: {code or status} {message}".rstrip())


def with_body_retries(read: Callable[[], T]) -> T:
    """Run a request-and-read-body call again when the connection drops mid-body."""
    for attempt in range(1, BODY_ATTEMPTS + 1):
        try:
            return read()
        except (ResponseStreamingError, ReadTimeoutError, IncompleteReadError):
            if attempt == BODY_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.2 * 2**attempt))  # jittered backoff
    raise AssertionError("unreachable")
