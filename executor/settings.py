"""Configuration, read once per entry point from the environment and passed down."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.errors import ConfigError

CONFIG_FILE = ".executor.yaml"


def _whole(raw: object, where: str, default: int, minimum: int) -> int:
    """A whole number >= minimum from the environment (str) or the config file (any YAML)."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str):
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
    if value is None or value < minimum:
        raise ConfigError(
            f"{where}{raw!r} is not a whole number of at least {minimum}; set it to e.g. {default}"
        )
    return value


def _seconds(raw: object, where: str, default: float) -> float:
    """A finite, non-negative number of seconds from the environment or the config file."""
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"{where}{raw!r} is not a number of seconds (0 or more); set it to e.g. {default:g}"
        )
    return value


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    config: Mapping[str, Any] | None = None,
    key: str | None = None,
    minimum: int = 1,
) -> int:
    """The environment variable `name`, else the config file's `key`, else `default`."""
    raw = env.get(name)
    if raw is not None and raw != "":
        return _whole(raw, f"{name}=", default, minimum)
    if config is not None and key is not None and config.get(key) is not None:
        return _whole(config[key], f"{CONFIG_FILE}: {key}: ", default, minimum)
    return default


def _float(
    env: Mapping[str, str],
    name: str,
    default: float,
    config: Mapping[str, Any] | None = None,
    key: str | None = None,
) -> float:
    raw = env.get(name)
    if raw is not None and raw != "":
        return _seconds(raw, f"{name}=", default)
    if config is not None and key is not None and config.get(key) is not None:
        return _seconds(config[key], f"{CONFIG_FILE}: {key}: ", default)
    return default


_TEXT_KEYS = ("image", "store", "s3_endpoint_url", "redis_url", "queue", "gpu_queue")


def _text(config: Mapping[str, Any], key: str) -> str | None:
    """A config value that must be a string (a number is taken as its text)."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            f"{CONFIG_FILE}: {key}: {value!r} is not a text value; write e.g. "
            f"{key}: {_EXAMPLES[key]}"
        )
    return str(value)


_EXAMPLES = {
    "image": "python:3.11-slim",
    "store": "s3://bucket/prefix",
    "s3_endpoint_url": "http://minio:9000",
    "redis_url": "redis://host:6379/0",
    "queue": "default",
}


@dataclass(frozen=True)
class Settings:
    """Everything executor reads from the environment (and `.executor.yaml`)."""

    image: str | None = None  # default stage image (EXECUTOR_IMAGE or config `image`)
    jobs: int = 1  # parallel stages for `executor run`
    store: str | None = None  # EXECUTOR_STORE: default store URL for push/pull
    s3_endpoint_url: str | None = None  # EXECUTOR_S3_ENDPOINT_URL (MinIO and friends)
    transfer_workers: int = 16  # EXECUTOR_TRANSFER_WORKERS
    stop_grace: float = 10.0  # EXECUTOR_STOP_GRACE: seconds between SIGINT/SIGTERM and SIGKILL
    container_env: Mapping[str, str] = field(default_factory=dict)  # config `env`
    trust_dvc_runs: bool = True  # accept run-cache entries DVC wrote (no image recorded)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole config file

    @classmethod
    def from_env(cls, env: Mapping[str, str], repo: Path | None = None) -> Settings:
        config: Mapping[str, Any] = {}
        if repo is not None and (repo / CONFIG_FILE).is_file():
            from executor import yamlio

            try:
                loaded = yamlio.load_file(repo / CONFIG_FILE, CONFIG_FILE)
            except RecursionError:
                raise ConfigError(f"{CONFIG_FILE} is nested too deeply to be read") from None
            if loaded is not None and not isinstance(loaded, Mapping):
                raise ConfigError(f"{CONFIG_FILE}: expected a mapping of settings")
            config = loaded or {}
        for key in _TEXT_KEYS:
            _text(config, key)
        image = env.get("EXECUTOR_IMAGE") or _text(config, "image")
        container_env = config.get("env") or {}
        if not isinstance(container_env, Mapping):
            raise ConfigError(f"{CONFIG_FILE}: `env` must be a mapping of NAME: value")
        for name, value in container_env.items():
            if isinstance(value, Mapping | list) or not isinstance(name, str) or not name:
                raise ConfigError(
                    f"{CONFIG_FILE}: `env` must map names to plain values; '{name}' does not"
                )
        return cls(
            image=str(image) if image else None,
            jobs=_int(env, "EXECUTOR_JOBS", 1, config, "jobs"),
            store=env.get("EXECUTOR_STORE") or _text(config, "store"),
            s3_endpoint_url=env.get("EXECUTOR_S3_ENDPOINT_URL") or _text(config, "s3_endpoint_url"),
            transfer_workers=_int(env, "EXECUTOR_TRANSFER_WORKERS", 16),
            stop_grace=_float(env, "EXECUTOR_STOP_GRACE", 10.0, config, "stop_grace"),
            container_env={str(k): str(v) for k, v in container_env.items()},
            trust_dvc_runs=env.get("EXECUTOR_TRUST_DVC_RUNS", "1") not in ("0", "false", "no"),
            raw=dict(config),
        )


def settings_for(repo: Path | None) -> Settings:
    """Settings for a CLI invocation (the one place that reads os.environ)."""
    return Settings.from_env(os.environ, repo)
