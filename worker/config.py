"""A worker's configuration: read once at its start, from its flags over its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from executor.ceilings import Ceilings
from executor.errors import ConfigError
from executor.fleet.keys import DEFAULT_GPU_QUEUE
from executor.limits import parse_memory
from worker.events import LOG_BYTES
from worker.patientstore import STORE_PATIENCE

DRAIN_GRACE = 60.0  # seconds a running stage is given once its worker is asked to stop


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker serves: read once at its start, from its flags over its environment,
    and handed to each job (work horses are forked from the worker: see `worker_config`)."""

    store_url: str
    home: Path  # the local cache and the jobs' workspaces
    cache_bytes: int
    ceilings: Ceilings = field(default_factory=Ceilings)
    log_bytes: int = LOG_BYTES
    store_patience: float = STORE_PATIENCE  # seconds a store outage is waited out
    drain_grace: float = DRAIN_GRACE  # seconds a stage may go on once the worker is stopped
    gpu_queue: str = DEFAULT_GPU_QUEUE  # where GPU jobs belong (EXECUTOR_GPU_QUEUE)
    env: Mapping[str, str] = field(default_factory=dict)  # what it was read from
    shared_home: bool = False  # `home` is several workers': each takes a slot folder in it

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerConfig:
        store = env.get("EXECUTOR_STORE")
        if not store:
            raise ConfigError("the worker serves no store: start it with --store or EXECUTOR_STORE")
        home = Path(env.get("EXECUTOR_WORKER_DIR") or Path.home() / ".cache" / "executor-worker")
        raw = env.get("EXECUTOR_WORKER_CACHE_SIZE") or "10g"
        try:
            size = parse_memory(raw, "cache size")
        except ConfigError:
            raise ConfigError(
                f"EXECUTOR_WORKER_CACHE_SIZE={raw!r} (--cache-size) is not a size; write e.g. 50g"
            ) from None
        raw = env.get("EXECUTOR_WORKER_LOG_BYTES") or str(LOG_BYTES)
        if not raw.isdigit():
            raise ConfigError(
                f"EXECUTOR_WORKER_LOG_BYTES={raw!r} (--log-bytes) is not a number of bytes"
            )
        log_bytes = int(raw)
        patience = _seconds(env, "STORE_PATIENCE", STORE_PATIENCE, "0 to fail at once")
        grace = _seconds(env, "DRAIN_GRACE", DRAIN_GRACE, "0 to hand over at once")
        gpu_queue = env.get("EXECUTOR_GPU_QUEUE") or DEFAULT_GPU_QUEUE
        ceilings = Ceilings.from_env(env)
        shared = env.get("EXECUTOR_WORKER_SHARED_DIR", "").lower() in ("1", "true", "yes")
        return cls(
            store, home, size, ceilings, log_bytes, patience, grace, gpu_queue, dict(env), shared
        )


def _seconds(env: Mapping[str, str], name: str, default: float, zero: str) -> float:
    """EXECUTOR_WORKER_<name>, a number of seconds (--<name> as a flag)."""
    raw = env.get(f"EXECUTOR_WORKER_{name}") or str(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        flag = "--" + name.lower().replace("_", "-")
        raise ConfigError(
            f"EXECUTOR_WORKER_{name}={raw!r} ({flag}) is not a number of seconds; "
            f"write e.g. {default:g}, or {zero}"
        )
    return value


_config: WorkerConfig | None = None  # set by `use` (the CLI) before RQ forks any work horse


def use(config: WorkerConfig) -> None:
    """Make `config` this process's (and its future work horses') configuration."""
    global _config
    _config = config


def worker_config() -> WorkerConfig:
    """This worker's configuration; outside a started worker (run_job called on its own),
    read from the environment."""
    return _config if _config is not None else WorkerConfig.from_env(os.environ)
