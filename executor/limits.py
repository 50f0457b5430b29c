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


def _positive_number(value: object, key: str, example: str) -> float:
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


def _positive_int(value: object, key: str, example: str) -> int:
    number = _positive_number(value, key, example)
    if number != int(number):
        raise ConfigError(f"{_where(key)}: {value!r} must be a whole number, e.g. {example}")
    return int(number)


def _parse_field(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "memory":
        return parse_memory(value)
    if key == "cpus":
        return _positive_number(value, key, "1.5")
    if key == "pids":
        return _positive_int(value, key, "1024")
    if key == "gpus":
        if value == "all" or value == GPUS_ALL:
            return GPUS_ALL
        return _positive_int(value, key, "1 or 'all'")
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


DEFAULT_TIMEOUT = 24 * 3600.0  # a job that names no timeout (--default-timeout)
MAX_TIMEOUT = 7 * 24 * 3600.0  # the longest a job may ask for (--max-timeout)
MAX_PIDS = 4096  # the most processes a job may ask for (--max-pids)
TMP_SIZE = 1 << 30  # the /tmp tmpfs of a stage's container (--tmp-size)

# name -> (environment variable, worker flag)
CEILING_SETTINGS = {
    "memory": ("EXECUTOR_WORKER_MAX_MEMORY", "--max-memory"),
    "cpus": ("EXECUTOR_WORKER_MAX_CPUS", "--max-cpus"),
    "pids": ("EXECUTOR_WORKER_MAX_PIDS", "--max-pids"),
    "timeout": ("EXECUTOR_WORKER_MAX_TIMEOUT", "--max-timeout"),
    "default_timeout": ("EXECUTOR_WORKER_DEFAULT_TIMEOUT", "--default-timeout"),
    "network": ("EXECUTOR_WORKER_ALLOW_NETWORK", "--allow-network"),
    "gpus": ("EXECUTOR_WORKER_ALLOW_GPUS", "--allow-gpus"),
    "tmp_size": ("EXECUTOR_WORKER_TMP_SIZE", "--tmp-size"),
}


def _human_size(n: int) -> str:
    for unit, scale in (("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _human_seconds(s: float) -> str:
    return f"{s / 3600:g}h" if s >= 3600 and s % 3600 == 0 else f"{s:g}s"


@dataclass(frozen=True)
class Ceilings:
    """What a fleet worker lets a job ask for (None: no ceiling). A job over one is refused
    before anything runs; a job that names no limit gets the ceiling (memory, cpus, pids)
    or the default timeout."""

    memory: int | None = None
    cpus: float | None = None
    pids: int = MAX_PIDS
    timeout: float = MAX_TIMEOUT
    default_timeout: float = DEFAULT_TIMEOUT
    network: bool = False
    gpus: bool = False
    tmp_size: int = TMP_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ceilings:
        """From EXECUTOR_WORKER_* (the worker's flags set them); ConfigError names the bad one."""
        values: dict[str, Any] = {}
        for name, (var, flag) in CEILING_SETTINGS.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                if name in ("network", "gpus"):
                    if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                        raise ConfigError("not a yes or no")
                    values[name] = raw.lower() in ("1", "true", "yes")
                elif name in ("memory", "tmp_size"):
                    values[name] = parse_memory(raw, name)
                elif name in ("timeout", "default_timeout"):
                    values[name] = parse_duration(raw, name)
                elif name == "cpus":
                    values[name] = _positive_number(raw, name, "4")
                else:
                    values[name] = _positive_int(raw, name, "4096")
            except ConfigError:
                raise ConfigError(
                    f"{var}={raw!r} ({flag}) is not valid; see executor-worker --help"
                ) from None
        ceilings = cls(**values)
        if ceilings.default_timeout > ceilings.timeout:
            ceilings = replace(ceilings, default_timeout=ceilings.timeout)
        return ceilings

    def apply(self, limits: Limits, stage: str) -> Limits:
        """`limits` within these ceilings, unset ones filled in; ConfigError naming the first
        limit a job asks beyond its ceiling, and the worker flag that raises it."""

        def over(what: str, asked: str, ceiling: str, name: str) -> ConfigError:
            flag = CEILING_SETTINGS[name][1]
            return ConfigError(
                f"stage '{stage}' asks for {what} {asked}, over this worker's ceiling of "
                f"{ceiling}; lower meta.executor.{name} or start workers with {flag}"
            )

        if limits.network and not self.network:
            raise over("network", "true", "no network", "network")
        if limits.gpus is not None and not self.gpus:
            raise over("gpus", "all" if limits.gpus == GPUS_ALL else str(limits.gpus),
                       "no GPUs", "gpus")  # fmt: skip
        memory, cpus, pids, timeout = limits.memory, limits.cpus, limits.pids, limits.timeout
        if self.memory is not None:
            if memory is not None and memory > self.memory:
                raise over("memory", _human_size(memory), _human_size(self.memory), "memory")
            memory = memory or self.memory
        if self.cpus is not None:
            if cpus is not None and cpus > self.cpus:
                raise over("cpus", f"{cpus:g}", f"{self.cpus:g}", "cpus")
            cpus = cpus or self.cpus
        if pids is not None and pids > self.pids:
            raise over("pids", str(pids), str(self.pids), "pids")
        if timeout is not None and timeout > self.timeout:
            raise over("timeout", _human_seconds(timeout), _human_seconds(self.timeout), "timeout")
        return replace(
            limits,
            memory=memory,
            cpus=cpus,
            pids=pids or self.pids,
            timeout=timeout or self.default_timeout,
        )
