"""Every error executor raises on purpose.

    ExecutorError                    base; str(e) is a one-line message a user can act on
    ├── UserError                    the input is wrong; fixing the input fixes it (final)
    │   ├── PipelineError            dvc.yaml / params / templating / DAG problems
    │   ├── ConfigError              settings, image names, limits
    │   └── WorkspaceError           paths escaping the repository, missing deps
    │       └── UnsavedChanges       a checkout would lose files that are in no cache
    ├── StageFailed                  the stage's own command exited non-zero (final)
    │   └── OutputMissing            ... but did not create one of its outputs
    ├── StageCancelled               Ctrl-C / cancel reached the stage
    ├── StageTimedOut                the stage ran past its deadline
    ├── StageOutOfMemory             the container was OOM-killed
    └── InfrastructureError          Docker, storage, network: may be retried
        ├── SandboxError             the Docker engine or an image
        └── StoreError               the object store (local folder or S3)
            └── CorruptObject        an object's content does not match its md5

Raise where the cause is known; catch in the CLI and in the worker's job entry.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Base of every error executor raises on purpose."""


class UserError(ExecutorError):
    """The input is wrong. Final: fixing the input is the only way forward."""


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


class WorkspaceError(UserError):
    """A path escapes the repository, or a dependency is missing."""


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

    def __init__(self, stage: str, exit_code: int, line: str | None, log_tail: str) -> None:
        where = f"failed to run: {line}, " if line is not None else ""
        super().__init__(f"stage '{stage}' {where}exited with {exit_code}")
        self.stage = stage
        self.exit_code = exit_code
        self.line = line
        self.log_tail = log_tail


class OutputMissing(StageFailed):
    """An output is missing: the command did not create it, or a frozen stage lacks it."""

    def __init__(self, stage: str, path: str) -> None:
        ExecutorError.__init__(self, f"stage '{stage}': output '{path}' does not exist")
        self.stage = stage
        self.exit_code = 0
        self.line = None
        self.log_tail = ""
        self.path = path


class StageOverstepped(StageFailed):
    """The command created a file no stage may write: one git, DVC or executor reads on the
    host (`.executor.yaml`, a `dvc.lock`, `.dvcignore`, `.git`)."""

    def __init__(self, stage: str, path: str, undone: str = "it was removed") -> None:
        ExecutorError.__init__(
            self,
            f"'{path}' was written while stage '{stage}' ran (by it, or by a stage running "
            "beside it), and no stage may write it (git, DVC or executor reads it on the host); "
            f"{undone}: make the stage write only its outputs",
        )
        self.stage = stage
        self.exit_code = 0
        self.line = None
        self.log_tail = ""
        self.path = path


class StageCancelled(ExecutorError):
    """The stage was cancelled (Ctrl-C or a cancel request) and stopped."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"stage '{stage}' was cancelled")
        self.stage = stage


class StageTimedOut(ExecutorError):
    """The stage ran past its deadline and was stopped."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(f"stage '{stage}' timed out after {seconds:g}s")
        self.stage = stage
        self.seconds = seconds


class StageOutOfMemory(ExecutorError):
    """The stage's container was killed for exceeding its memory limit."""

    def __init__(self, stage: str, limit: str | None) -> None:
        hint = f" (limit {limit}); raise meta.executor.memory" if limit else ""
        super().__init__(f"stage '{stage}' ran out of memory{hint}")
        self.stage = stage
        self.limit = limit


class InfrastructureError(ExecutorError):
    """Something outside the stage failed (engine, storage, network). May be retried."""


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


def os_error(stage: str, exc: OSError) -> WorkspaceError:
    """An OSError met while handling a stage's files, as a one-line error naming the path."""
    where = f": {exc.filename}" if exc.filename else ""
    return WorkspaceError(f"stage '{stage}': {exc.strerror or exc}{where}")
