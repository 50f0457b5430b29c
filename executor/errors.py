"""Every error executor raises on purpose.

    ExecutorError                    base; str(e) is a one-line message a user can act on  1
    ├── UserError                    the input is wrong; fixing the input fixes it (final)  2
    │   ├── PipelineError            dvc.yaml / params / templating / DAG problems
    │   ├── ConfigError              settings, image names, limits
    │   ├── InvalidJobSpec           a job spec that does not validate (a worker refuses it)
    │   │   └── RefusedJob           a job that is no stage job (another function, callbacks)
    │   └── WorkspaceError           paths escaping the repository, missing deps
    │       └── UnsavedChanges       a checkout would lose files that are in no cache
    ├── StageFailed                  the stage's own command exited non-zero (final)
    │   ├── OutputMissing            ... but did not create one of its outputs
    │   └── StageOverstepped         ... or wrote a file no stage may write
    ├── StageCancelled               Ctrl-C / cancel reached the stage
    ├── StageTimedOut                the stage ran past its deadline
    ├── StageOutOfMemory             the container was OOM-killed
    └── InfrastructureError          Docker, storage, network: may be retried               3
        ├── SandboxError             the Docker engine or an image
        ├── StoreError               the object store (local folder or S3)
        │   ├── CorruptObject        an object's content does not match its md5
        │   ├── ObjectMissing        the store does not have an object
        │   ├── StoreAccessDenied    403, bad or missing credentials (final)
        │   ├── StoreNotFound        the bucket or folder does not exist (final)
        │   ├── StoreUnreachable     the endpoint did not answer, after retries
        │   └── TransferIncomplete   push/pull moved what it could; some objects failed
        ├── FleetError               Redis or the queue could not be used
        ├── RemoteInfrastructureError  a worker met an infrastructure problem
        └── RemoteError              a job failed on a worker, or its result is unusable
            ├── JobVanished          a job's record left Redis while it was followed
            └── JobLost              a running job's heartbeat stopped

The number after a branch is the exit status (`exit_status`) of every error below it: the
CLI, the transfer commands and the worker all exit with it (130 for Ctrl-C is not an
error). A job's failure crosses to its coordinator as its class's wire form (`wire_kind`,
`wire_fields`, `from_wire`), beside each class below.

Raise where the cause is known; catch in the CLI and in the worker's job entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

E = TypeVar("E", bound="ExecutorError")
# wire kind -> the class that declares it (see ExecutorError.wire_kind)
WIRE_KINDS: dict[str, type[ExecutorError]] = {}


class ExecutorError(Exception):
    """Base of every error executor raises on purpose."""

    exit_status: ClassVar[int] = 1  # a stage failed, or was stopped
    # How a job's failure crosses from a worker to its coordinator: its kind (a subclass
    # that declares none travels as its nearest parent's), `wire_fields`, and `from_wire`
    # to raise it again there. What comes back is read from Redis: from_wire checks it.
    wire_kind: ClassVar[str] = "error"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "wire_kind" in cls.__dict__:
            WIRE_KINDS[cls.wire_kind] = cls

    def wire_fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        """The error again, on the coordinator. KeyError, TypeError or ValueError if the
        fields are not what this kind carries."""
        return cls(message)

    def prefixed(self: E, where: str) -> E:
        """The same error, its message led by `where` (e.g. "stage 'train'"), whatever the
        class's own constructor takes."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.args = (f"{where}: {self}",)
        clone.__cause__ = self
        return clone


class UserError(ExecutorError):
    """The input is wrong. Final: fixing the input is the only way forward."""

    exit_status = 2
    wire_kind = "user"


class PipelineError(UserError):
    """A problem in dvc.yaml, a params file, templating or the stage graph."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ConfigError(UserError):
    """A setting, an image name or a limit is not usable."""

    wire_kind = "config"


class InvalidJobSpec(UserError):
    """A job spec that does not validate; the worker refuses it."""


class RefusedJob(InvalidJobSpec):
    """A job that is not a stage job: failed by RQ, nothing of it run."""


class WorkspaceError(UserError):
    """A path escapes the repository, or a dependency is missing."""

    wire_kind = "workspace"


class UnsavedChanges(WorkspaceError):
    """A checkout would replace or delete workspace files whose content is in no cache."""

    def __init__(self, paths: list[str], outputs: list[str]) -> None:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        where = ", ".join(f"'{o}'" for o in outputs)
        super().__init__(
            f"cannot check out {where}: {len(paths)} changed file(s) are in no cache and "
            f"would be lost ({shown}); save them (dvc commit, dvc add) or use --force to "
            "discard them"
        )
        self.paths = paths
        self.outputs = outputs


class StageFailed(ExecutorError):
    """The stage's own command exited non-zero. Final: retrying will not help."""

    def __init__(
        self,
        stage: str,
        exit_code: int,
        line: str | None,
        log_tail: str,
        message: str | None = None,
    ) -> None:
        where = f"failed to run: {line}, " if line is not None else ""
        super().__init__(message or f"stage '{stage}' {where}exited with {exit_code}")
        self.stage = stage
        self.exit_code = exit_code
        self.line = line
        self.log_tail = log_tail

    wire_kind = "failed"

    def wire_fields(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "exit_code": self.exit_code,
            "line": self.line,
            "log_tail": self.log_tail,
        }

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        line = fields.get("line")
        return StageFailed(
            stage,
            int(fields["exit_code"]),
            str(line) if line is not None else None,
            str(fields.get("log_tail") or ""),
        )


class OutputMissing(StageFailed):
    """An output is missing: the command did not create it, or a frozen stage lacks it."""

    def __init__(self, stage: str, path: str) -> None:
        super().__init__(stage, 0, None, "", f"stage '{stage}': output '{path}' does not exist")
        self.path = path

    wire_kind = "output_missing"

    def wire_fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "path": self.path}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return OutputMissing(stage, str(fields["path"]))


class StageOverstepped(StageFailed):
    """The command created a file no stage may write: one git, DVC or executor reads on the
    host (`.executor.yaml`, a `dvc.lock`, `.dvcignore`, `.git`)."""

    def __init__(self, stage: str, path: str, undone: str = "it was removed") -> None:
        super().__init__(
            stage,
            0,
            None,
            "",
            f"'{path}' was written while stage '{stage}' ran (by it, or by a stage running "
            "beside it), and no stage may write it (git, DVC or executor reads it on the host); "
            f"{undone}: make the stage write only its outputs",
        )
        self.path = path

    wire_kind = "overstepped"

    def wire_fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "path": self.path}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return StageOverstepped(stage, str(fields["path"])).prefixed("on a worker")


class StageCancelled(ExecutorError):
    """The stage was cancelled (Ctrl-C or a cancel request) and stopped."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"stage '{stage}' was cancelled")
        self.stage = stage

    wire_kind = "cancelled"

    def wire_fields(self) -> dict[str, Any]:
        return {"stage": self.stage}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return StageCancelled(stage)


class StageTimedOut(ExecutorError):
    """The stage ran past its deadline and was stopped."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(f"stage '{stage}' timed out after {seconds:g}s")
        self.stage = stage
        self.seconds = seconds

    wire_kind = "timed_out"

    def wire_fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "seconds": self.seconds}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        return StageTimedOut(stage, float(fields["seconds"]))


class StageOutOfMemory(ExecutorError):
    """The stage's container was killed for exceeding its memory limit."""

    def __init__(self, stage: str, limit: str | None) -> None:
        hint = f" (limit {limit}); raise meta.executor.memory" if limit else ""
        super().__init__(f"stage '{stage}' ran out of memory{hint}")
        self.stage = stage
        self.limit = limit

    wire_kind = "out_of_memory"

    def wire_fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "limit": self.limit}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        limit = fields.get("limit")
        return StageOutOfMemory(stage, str(limit) if limit is not None else None)


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


def os_error(stage: str, exc: OSError) -> WorkspaceError:
    """An OSError met while handling a stage's files, as a one-line error naming the path."""
    where = f": {exc.filename}" if exc.filename else ""
    return WorkspaceError(f"stage '{stage}': {exc.strerror or exc}{where}")
