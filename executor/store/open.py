"""Stores by URL: a folder path or `file://` URL, or `s3://bucket/prefix[?endpoint_url=&region=]`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from executor.errors import ConfigError
from executor.s3access import S3Access
from executor.settings import Settings
from executor.store.base import ObjectStore
from executor.store.local import LocalStore

S3_OPTIONS = frozenset({"endpoint_url", "region"})


def open_store(
    url: str, settings: Settings, base: Path | None = None, access: S3Access | None = None
) -> ObjectStore:
    """The store `url` names; a relative folder is taken from `base` (default: the cwd).
    For S3, `access` says how to connect (a DVC remote's options); an endpoint or region in
    the URL wins over it, and it over `settings.s3_endpoint_url`."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return _open_s3(url, parts.netloc, parts.path, parts.query, settings, access)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"store URL {url!r}: file:// URLs must name a local path")
        path = Path(unquote(parts.path))
    elif parts.scheme == "":
        path = Path(url).expanduser()
    else:
        raise ConfigError(
            f"store URL {url!r}: unsupported scheme '{parts.scheme}'; use a folder path, "
            "file:///path or s3://bucket/prefix"
        )
    return LocalStore(path if path.is_absolute() else (base or Path.cwd()) / path)


def _open_s3(
    url: str, bucket: str, path: str, query: str, settings: Settings, access: S3Access | None
) -> ObjectStore:
    from executor.store.s3 import S3Store
    from executor.store.s3client import make_client

    if not bucket:
        raise ConfigError(f"store URL {url!r} names no bucket; use s3://bucket/prefix")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(options) - S3_OPTIONS
    if unknown:
        raise ConfigError(
            f"store URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(S3_OPTIONS))}"
        )
    how = access or S3Access()
    # EXECUTOR_S3_ENDPOINT_URL is for executor's own store URLs: a DVC remote that names no
    # endpoint is AWS's, as for dvc push.
    fallback = settings.s3_endpoint_url if access is None else None
    endpoint = options.get("endpoint_url") or how.endpoint_url or fallback
    region = options.get("region") or how.region
    workers = max(1, settings.transfer_workers)
    return S3Store(
        lambda: make_client(endpoint or None, region=region, workers=workers, access=how),
        bucket,
        path,
        workers=workers,
        write_args=how.write_args(),
    )
