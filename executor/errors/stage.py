"""How a stage's own run ended when it did not succeed (exit status 1): its command failed
or overstepped, or it was cancelled, timed out or ran out of memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.errors.base import ExecutorError


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
