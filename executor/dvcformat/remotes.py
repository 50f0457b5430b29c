"""DVC's remotes (`dvc remote add [-d]`) as executor stores, so `executor push`/`pull` in a
repository that `dvc push`es somewhere go to the same place with no flag, and `-r NAME`
picks another, as with DVC.

An S3 remote's connection options (endpoint, region, profile, keys, TLS, timeouts) carry
over, and so do its write options (server-side encryption with AES256 or KMS, a canned ACL
or grants), on every object and run-cache entry. Options executor cannot honour (keys the
customer provides for each read, version-aware or worktree layouts, anonymous access) are
refused with a message rather than ignored: an object uploaded without the encryption the
remote asks for is worse than no upload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from executor.dvcformat.config import Value, merged
from executor.errors import ConfigError
from executor.s3access import S3Access

# DVC remote option -> S3Access field
S3_FIELDS = {
    "endpointurl": "endpoint_url",
    "region": "region",
    "profile": "profile",
    "access_key_id": "access_key_id",
    "secret_access_key": "secret_access_key",
    "session_token": "session_token",
    "credentialpath": "credentials_file",
    "configpath": "config_file",
}
GRANTS = {
    "grant_read": "GrantRead",
    "grant_read_acp": "GrantReadACP",
    "grant_write_acp": "GrantWriteACP",
    "grant_full_control": "GrantFullControl",
}
WRITE_FIELDS = {"sse": "sse", "sse_kms_key_id": "sse_kms_key_id", "acl": "acl"}
S3_OPTIONS = (
    frozenset(S3_FIELDS)
    | frozenset(GRANTS)
    | frozenset(WRITE_FIELDS)
    | {"ssl_verify", "use_ssl", "read_timeout", "connect_timeout"}
)
PATH_FIELDS = frozenset({"credentialpath", "configpath"})
# Without effect on what executor stores or how it connects: DVC's own job counts, its
# optional re-check of downloads (executor always checks), retired options.
NO_EFFECT = frozenset(
    {"url", "jobs", "checksum_jobs", "verify", "listobjects", "no_traverse", "cache_regions"}
)
FLAGS_OFF = frozenset({"version_aware", "worktree", "allow_anonymous_login"})  # fine if false
# A folder remote's link type and its warning about slow links: how DVC fills that folder's
# own checkouts, nothing executor writes depends on them.
LOCAL_NO_EFFECT = frozenset({"type", "slow_link_warning"})
_HEADER = re.compile(r'remote\s+"(?P<name>[^"]*)"')


@dataclass(frozen=True)
class DvcRemote:
    """A remote from DVC's config: where it points and how to reach it."""

    name: str
    url: str  # s3://bucket/prefix, or an absolute folder path
    s3: S3Access = field(default_factory=S3Access)


def find_remote(dvc_dir: Path, name: str | None = None) -> DvcRemote | None:
    """The remote `name`, or DVC's default remote (`core.remote`) when no name is given
    (None if the repository has none)."""
    config = merged(dvc_dir)
    remotes = {
        match["name"]: values
        for section, values in config.items()
        if (match := _HEADER.fullmatch(section))
    }
    if name is None:
        default = config.get("core", {}).get("remote")
        if default is None or not default.text:
            return None
        name = default.text.lower()
        if name not in remotes:
            raise ConfigError(
                f"DVC's default remote '{name}' ({default.file}) is not defined; "
                "add it with `dvc remote add` or pass --store"
            )
    elif (name := name.lower()) not in remotes:  # DVC's remote names are case-blind
        known = ", ".join(sorted(remotes)) or "none"
        raise ConfigError(f"no DVC remote named '{name}' (defined: {known}); see `dvc remote list`")
    return _remote(name, remotes[name])


def _remote(name: str, options: dict[str, Value]) -> DvcRemote:
    url_value = options.get("url")
    if url_value is None or not url_value.text:
        raise ConfigError(f"DVC remote '{name}' has no url; set it with `dvc remote modify`")
    url = url_value.path()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "remote":
        raise ConfigError(
            f"DVC remote '{name}' is {url}, a path inside another remote; executor does not "
            "follow remote:// URLs: give the full URL, or pass --store"
        )
    if scheme not in ("", "s3", "file"):
        raise ConfigError(
            f"DVC remote '{name}' is {url}: executor stores are S3 (s3://) or folders; "
            "pass --store with one of those"
        )
    for key, value in options.items():
        if scheme != "s3" and key in LOCAL_NO_EFFECT:
            continue
        _check(name, key, value, s3=scheme == "s3")
    if scheme != "s3":
        return DvcRemote(name, url)
    given = {
        S3_FIELDS[key]: value.path() if key in PATH_FIELDS else value.text
        for key, value in options.items()
        if key in S3_FIELDS
    }
    writes = {WRITE_FIELDS[k]: v.text for k, v in options.items() if k in WRITE_FIELDS}
    grants = tuple((GRANTS[k], v.text) for k, v in sorted(options.items()) if k in GRANTS)
    if grants and "acl" in options:
        raise ConfigError(
            f"DVC remote '{name}' sets both acl and grant_* ({options['acl'].file}); "
            "S3 takes one or the other, as DVC says"
        )
    return DvcRemote(
        name,
        url,
        S3Access(
            **given,
            verify=_verify(name, options),
            use_ssl=_flag(name, options, "use_ssl", default=True),
            connect_timeout=_seconds(name, options, "connect_timeout"),
            read_timeout=_seconds(name, options, "read_timeout"),
            **writes,
            grants=grants,
        ),
    )


def _check(name: str, key: str, value: Value, *, s3: bool) -> None:
    if key in NO_EFFECT:
        return
    if key in FLAGS_OFF:
        if _bool(name, key, value):
            raise ConfigError(
                f"DVC remote '{name}' sets {key} = true ({value.file}); executor stores only "
                "DVC's plain content-addressed layout, with credentials; use dvc push/pull "
                "for this remote"
            )
        return
    if not (s3 and key in S3_OPTIONS):
        raise ConfigError(
            f"DVC remote '{name}' sets {key} ({value.file}), which executor does not apply; "
            "use dvc push/pull for this remote, or pass --store"
        )


def _bool(name: str, key: str, value: Value) -> bool:
    lowered = value.text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ConfigError(
        f"DVC remote '{name}': {key} = {value.text!r} ({value.file}) is not true or false"
    )


def _flag(name: str, options: dict[str, Value], key: str, *, default: bool) -> bool:
    value = options.get(key)
    return default if value is None else _bool(name, key, value)


def _verify(name: str, options: dict[str, Value]) -> bool | str | None:
    """ssl_verify: true/false, or a CA bundle's path."""
    value = options.get("ssl_verify")
    if value is None:
        return None
    if value.text.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return _bool(name, "ssl_verify", value)
    return value.text  # a CA bundle's path, given to botocore as DVC gives it


def _seconds(name: str, options: dict[str, Value], key: str) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    try:
        seconds = float(value.text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(
            f"DVC remote '{name}': {key} = {value.text!r} ({value.file}) is not a number "
            "of seconds above 0"
        )
    return seconds
