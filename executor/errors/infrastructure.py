"""Something outside the stage failed (exit status 3, may be retried): the Docker engine,
the object store, Redis and the fleet, or a worker that met one of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.errors.base import ExecutorError


class InfrastructureError(ExecutorError):
    """Something outside the stage failed (engine, storage, network). May be retried."""

    exit_status = 3
    wire_kind = "infrastructure"

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return RemoteInfrastructureError(message)  # the worker's trouble, said as it said it


class SandboxError(InfrastructureError):
    """The Docker engine is unreachable, an image is missing, or a container misbehaved."""


class StoreError(InfrastructureError):
    """The object store could not be read or written."""


class CorruptObject(StoreError):
    """An object's content does not hash to its name."""

    def __init__(self, oid: str, where: str, actual: str) -> None:
        super().__init__(f"object {oid} at {where} is corrupt (its content hashes to {actual})")
        self.oid = oid
        self.where = where
        self.actual = actual


class ObjectMissing(StoreError):
    """The store does not hold an object that was asked for."""

    def __init__(self, oid: str, where: str) -> None:
        super().__init__(f"object {oid} is missing from {where}")
        self.oid = oid
        self.where = where


class StoreAccessDenied(StoreError):
    """The store refused the request (HTTP 403, bad or missing credentials)."""


class StoreNotFound(StoreError):
    """The bucket (or the folder) the store URL names does not exist."""


class StoreUnreachable(StoreError):
    """The store's endpoint did not answer, even after retries."""


class TransferIncomplete(StoreError):
    """A push or pull finished, but some objects could not be moved (each with its reason)."""

    def __init__(self, action: str, failed: dict[str, str], kept: list[str] | None = None) -> None:
        first = next(iter(failed.values()), "")
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        also = ""
        if kept:
            shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
            also = (
                f"; also kept {len(kept)} changed file(s) that are in no cache ({shown}): "
                "--force discards them"
            )
        super().__init__(f"{action}: {len(failed)} object(s) failed: {first}{more}{also}")
        self.action = action
        self.failed = failed
        self.kept = kept or []


class FleetError(InfrastructureError):
    """Redis or the queue could not be used."""


class RemoteInfrastructureError(InfrastructureError):
    """A worker met an infrastructure problem (its engine, the store) running a job."""


class RemoteError(InfrastructureError):
    """A job failed on a worker with an error of no more specific kind, or its result
    could not be used: the fleet's trouble (exit code 3), not the stage's."""


class JobVanished(RemoteError):
    """A job's record left Redis while it was followed."""


class JobLost(RemoteError):
    """A running job's heartbeat stopped: its worker was killed or cut off."""


class JobHandedOver(JobLost):
    """The worker running the job was stopped (drained) before the stage ended: the stage
    was stopped after the worker's drain grace, and another worker runs it afresh."""

    wire_kind = "handed_over"

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return JobHandedOver(message)
