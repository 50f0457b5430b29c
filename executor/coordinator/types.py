"""What the coordinator's parts share: the backend protocol, run options and outcomes."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from executor.coordinator.plan import Evaluation
from executor.dvcformat.entry import Entry
from executor.errors import ExecutorError
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.pipeline.model import Stage
from executor.runcache import LayoutOf
from executor.stageio import StageIO
from executor.workspace import Workspace

BACKEND = "worker.local:LocalBackend"
LOCK_INTERVAL = 1.0  # seconds: dvc.lock writes are batched this much while stages resolve fast


class Backend(Protocol):
    """Runs stages in containers on this host (implemented in worker.local)."""

    def resolve_image(self, image: str) -> str: ...

    def execute(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> JobResult: ...

    def prestart(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> None:
        """Start the stage's container early, held until `execute` (or `discard`)."""

    def lookup(
        self,
        key: str,
        image_digest: str,
        *,
        env: str | None = None,
        fetch: bool = True,
        layout: LayoutOf | None = None,
    ) -> Entry | None:
        """A run-cache entry made with this image and environment (`env_digest`) (and, if a
        worker made it, `layout`: RunCache.check) found beyond the local cache (the
        fleet's store), its objects fetched into the local cache (unless not `fetch`:
        --dry); None where there is no such place."""

    def discard(self, address: str) -> None: ...

    def close(self) -> None:
        """Remove every container started early and never used."""


class Deferral(Protocol):
    """Where `submit --detach` leaves the stages the fleet resolves (fleet.detach)."""

    def defer(self, launch: Launch) -> None:
        """A stage decided to run: its job goes to the fleet when the run is recorded."""

    def wait(self, stage: Stage, ups: list[str]) -> None:
        """A stage after deferred ones (`ups`): a worker decides it once they are done."""


@dataclass(frozen=True)
class Launch:
    """A stage decided to run, and why; it starts when a slot is free."""

    stage: Stage
    ev: Evaluation
    why: str


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    downstream: bool = False
    dry: bool = False
    force: bool = False
    no_commit: bool = False
    allow_missing: bool = False
    jobs: int = 1
    detach: bool = False  # submit --detach: stages that must run are left to the fleet


@dataclass
class RunSummary:
    """What happened to each stage: skipped, restored, ran, failed, not run."""

    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, ExecutorError] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted


def load_backend(ws: Workspace, env: Mapping[str, str], jobs: int = 1) -> Backend:
    module, _, name = BACKEND.partition(":")
    factory = getattr(importlib.import_module(module), name)
    backend: Backend = factory(ws, env, jobs)
    return backend
