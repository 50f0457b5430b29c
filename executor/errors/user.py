"""The input is wrong: fixing the input is the only way forward (exit status 2)."""

from __future__ import annotations

from executor.errors.base import ExecutorError


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


def os_error(stage: str, exc: OSError) -> WorkspaceError:
    """An OSError met while handling a stage's files, as a one-line error naming the path."""
    where = f": {exc.filename}" if exc.filename else ""
    return WorkspaceError(f"stage '{stage}': {exc.strerror or exc}{where}")
