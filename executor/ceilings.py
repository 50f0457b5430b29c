"""What a fleet worker lets a job ask for: its ceilings, set by its flags and environment,
and the GPUs it declares. A job over a ceiling is refused before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from executor.errors import ConfigError
from executor.limits import (
    GPUS_ALL,
    Limits,
    parse_duration,
    parse_memory,
    positive_int,
    positive_number,
)

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
    "gpus": ("EXECUTOR_WORKER_GPUS", "--gpus"),
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
class WorkerGpus:
    """The GPUs a worker declares (`--gpus`): none, a count, as many as the engine gives
    (`all`), or the devices it may hand out (`device=0,1`: one worker per GPU on a host)."""

    count: int = 0  # GPUS_ALL for `all`; len(devices) when devices are named
    devices: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> WorkerGpus:
        text = raw.strip().lower()
        if text in ("", "0", "none", "no", "false"):
            return cls()
        if text == "all":
            return cls(GPUS_ALL)
        if text.startswith("device="):  # ids as given: GPU UUIDs are case-sensitive
            devices = tuple(d.strip() for d in raw.strip()[len("device=") :].split(","))
            if not all(d and d.replace("-", "").isalnum() for d in devices):
                raise ConfigError("device ids are letters, digits and dashes")
            return cls(len(devices), devices)
        return cls(positive_int(raw, "gpus", "1"))

    def __str__(self) -> str:
        if self.devices:
            return "device=" + ",".join(self.devices)
        return "all" if self.count == GPUS_ALL else str(self.count)

    def offers(self, asked: int) -> bool:
        """Whether a stage asking for `asked` GPUs (or GPUS_ALL) can have them here."""
        if self.count == 0:
            return False
        return asked == GPUS_ALL or self.count == GPUS_ALL or asked <= self.count

    def device_ids(self, asked: int | None) -> tuple[str, ...]:
        """The devices a stage asking `asked` GPUs is given: the first ones this worker
        names (all of them for `all`); none when it names no devices."""
        if asked is None or not self.devices:
            return ()
        return self.devices if asked == GPUS_ALL else self.devices[:asked]


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
    gpus: WorkerGpus = field(default_factory=WorkerGpus)
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
                if name == "network":
                    if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                        raise ConfigError("not a yes or no")
                    values[name] = raw.lower() in ("1", "true", "yes")
                elif name == "gpus":
                    values[name] = WorkerGpus.parse(raw)
                elif name in ("memory", "tmp_size"):
                    values[name] = parse_memory(raw, name)
                elif name in ("timeout", "default_timeout"):
                    values[name] = parse_duration(raw, name)
                elif name == "cpus":
                    values[name] = positive_number(raw, name, "4")
                else:
                    values[name] = positive_int(raw, name, "4096")
            except ConfigError:
                raise ConfigError(
                    f"{var}={raw!r} ({flag}) is not valid; see executor-worker --help"
                ) from None
        allowed = env.get("EXECUTOR_WORKER_ALLOW_GPUS", "").strip().lower()
        if "gpus" not in values and allowed in ("1", "true", "yes"):
            values["gpus"] = WorkerGpus(GPUS_ALL)  # --allow-gpus, before --gpus existed
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
        if limits.gpus is not None and not self.gpus.offers(limits.gpus):
            raise over("gpus", "all" if limits.gpus == GPUS_ALL else str(limits.gpus),
                       str(self.gpus) if self.gpus.count else "no GPUs", "gpus")  # fmt: skip
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
