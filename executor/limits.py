"""Resource limits of a stage's container, from stage `meta.executor` and worker defaults."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from executor.errors import ConfigError

_SIZE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NUM = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s?)?")
MIN_MEMORY = 6 << 20  # the smallest limit the Docker engine accepts
GPUS_ALL = -1  # `gpus: all`


def _where(key: str) -> str:
    return f"meta.executor.{key}"


def parse_memory(value: object, key: str = "memory") -> int:
    """Bytes from 2g / 512m / 1.5GiB / 2048 (bytes); binary units, as Docker reads them."""
    if isinstance(value, bool):
        raise ConfigError(f"{_where(key)}: {value!r} is not a size; write e.g. '2g' or '512m'")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(str(value).strip())
        if match is None:
            raise ConfigError(f"{_where(key)}: {value!r} is not a size; write e.g. '2g' or '512m'")
        size = int(float(match["num"]) * _SIZE_UNITS[match["unit"].lower()])
    if size < MIN_MEMORY:
        raise ConfigError(f"{_where(key)}: {value!r} is below Docker's minimum of 6m")
    return size


def parse_duration(value: object, key: str = "timeout") -> float:
    """Seconds from 90 / 90s / 30m / 1h30m."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        match = _DURATION.fullmatch(value.strip().lower())
        if match is not None and any(match.groupdict().values()):
            h, m, s = (float(match[g] or 0) for g in "hms")
            seconds = h * 3600 + m * 60 + s
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{_where(key)}: {value!r} is not a duration; write e.g. '30m' or '90s'")
    return seconds


def positive_number(value: object, key: str, example: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{_where(key)}: {value!r} must be a positive number, e.g. {example}")
    return number


def positive_int(value: object, key: str, example: str) -> int:
    number = positive_number(value, key, example)
    if number != int(number):
        raise ConfigError(f"{_where(key)}: {value!r} must be a whole number, e.g. {example}")
    return int(number)


def _parse_field(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "memory":
        return parse_memory(value)
    if key == "cpus":
        return positive_number(value, key, "1.5")
    if key == "pids":
        return positive_int(value, key, "1024")
    if key == "gpus":
        if value == "all" or value == GPUS_ALL:
            return GPUS_ALL
        return positive_int(value, key, "1 or 'all'")
    if key == "network":
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(key)}: {value!r} must be true or false")
        return value
    if key == "timeout":
        return parse_duration(value)
    raise AssertionError(key)


@dataclass(frozen=True)
class Limits:
    """What one stage's container may use. None means no limit (or, for gpus, no GPU)."""

    memory: int | None = None  # bytes; swap is not allowed on top
    cpus: float | None = None
    pids: int | None = 1024
    gpus: int | None = None  # a count, or GPUS_ALL
    network: bool = False
    timeout: float | None = None  # seconds

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _parse_field(f.name, value))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None, defaults: Limits | None = None) -> Limits:
        """Limits from a stage's `meta.executor` block, over `defaults` (else the built-ins).

        A whole stage `meta` (one with an `executor:` mapping) is accepted too. Keys that are
        not limits (`image`, say) are left to their owners.
        """
        base = defaults if defaults is not None else cls()
        if meta is None:
            return base
        if not isinstance(meta, Mapping):
            raise ConfigError(f"meta.executor: expected a mapping, got {type(meta).__name__}")
        inner = meta.get("executor")
        if isinstance(inner, Mapping):
            meta = inner
        return base.merged(meta)

    def merged(self, values: Mapping[str, Any]) -> Limits:
        """These limits with the limit keys of `values` parsed and applied."""
        names = {f.name for f in fields(self)}
        parsed = {k: _parse_field(k, v) for k, v in values.items() if k in names}
        return replace(self, **parsed)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        """The inverse of to_dict; validates every field and rejects unknown keys."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"limits: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: _parse_field(k, v) for k, v in data.items()})
