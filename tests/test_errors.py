"""The exception tree: one exit status per branch, used by every entry point; errors that
keep their fields when given a context; a Ctrl-C that meets an OSError still ends cleanly."""

from __future__ import annotations

import errno
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from executor import errors
from executor.coordinator.runner import Runner
from executor.coordinator.schedule import interrupt
from executor.coordinator.types import RunSummary
from executor.errors import (
    ConfigError,
    ExecutorError,
    InfrastructureError,
    OutputMissing,
    StageFailed,
    StageOverstepped,
    StoreError,
    UserError,
)
from executor.jobresult import JobResult
from executor.store.local import LocalStore


def _every_error() -> list[type[ExecutorError]]:
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, ExecutorError)
    ]


def test_every_error_has_the_exit_status_of_its_branch() -> None:
    found = _every_error()
    assert len(found) > 25  # the whole tree lives in executor/errors/
    for cls in found:
        if issubclass(cls, UserError):
            assert cls.exit_status == 2, cls
        elif issubclass(cls, InfrastructureError):
            assert cls.exit_status == 3, cls
        else:
            assert cls.exit_status == 1, cls


def test_no_error_class_is_defined_outside_the_errors_package() -> None:
    root = Path(__file__).resolve().parents[1]
    bases = {cls.__name__ for cls in _every_error()} | {"Exception", "BaseException"}
    header = re.compile(r"^class (\w+)\(([^)]*)\)")
    outside = [
        f"{path.relative_to(root)}: {found.group(1)}"
        for package in ("executor", "worker")
        for path in sorted((root / package).rglob("*.py"))
        if root / "executor" / "errors" not in path.parents
        for line in path.read_text().splitlines()
        if (found := header.match(line))
        and not found.group(1).startswith("_")  # a module's own signal, never raised out of it
        and any(b.strip() in bases for b in found.group(2).split(","))
    ]
    assert outside == []


def test_stage_failures_built_by_subclasses_keep_every_field() -> None:
    for exc in (OutputMissing("train", "model.pkl"), StageOverstepped("train", "dvc.lock")):
        assert (exc.stage, exc.exit_code, exc.line, exc.log_tail) == ("train", 0, None, "")
        assert isinstance(exc, StageFailed) and str(exc)


def test_a_prefixed_error_keeps_its_class_and_fields_whatever_its_constructor() -> None:
    original = OutputMissing("train", "model.pkl")
    shown = original.prefixed("stage 'train'")
    assert type(shown) is OutputMissing and shown.path == "model.pkl"
    assert str(shown) == f"stage 'train': {original}"
    assert isinstance(ConfigError("no image").prefixed("stage 'a'"), ConfigError)


def test_a_local_store_that_cannot_write_a_run_entry_raises_a_store_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "runs").write_text("not a folder")  # what a full or broken disk gives
    with pytest.raises(StoreError, match="runs"):
        store.write_run("ab" * 32, "cd" * 32, b"cmd: x\n")


@dataclass(frozen=True)
class _Stage:
    address: str


class _Interrupted:
    """What `interrupt` uses of a Runner, with Runner's own `fail`."""

    def __init__(self) -> None:
        self.summary = RunSummary()
        self.cancel = threading.Event()
        self.said: list[str] = []
        self.recorded: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def fail(self, stage: Any, exc: ExecutorError | OSError) -> None:
        Runner.fail(self, stage, exc)  # type: ignore[arg-type]

    def record_result(self, stage: Any, entry: Any) -> None:
        self.recorded.append(stage.address)


def test_an_os_error_met_while_interrupted_is_the_stages_failure_not_a_traceback() -> None:
    full: Future[JobResult] = Future()
    full.set_exception(OSError(errno.ENOSPC, "No space left on device", "out/model.pkl"))
    ended: Future[JobResult] = Future()
    ended.set_result(JobResult("b", {"cmd": "x"}, "", 0.0))
    runner = _Interrupted()
    interrupt(runner, {full: _Stage("a"), ended: _Stage("b")})  # type: ignore[arg-type, dict-item]
    assert runner.summary.interrupted and runner.cancel.is_set()
    assert runner.summary.status == {"a": "failed", "b": "ran"} and runner.recorded == ["b"]
    assert "No space left on device: out/model.pkl" in str(runner.summary.errors["a"])


def test_each_wire_kind_comes_back_as_its_own_error_with_its_message() -> None:
    from executor.errors import (
        ConfigError,
        RemoteError,
        RemoteInfrastructureError,
        StageCancelled,
        StageOutOfMemory,
        StageTimedOut,
        WorkspaceError,
    )
    from executor.jobresult import failure_from_dict, failure_to_dict

    sent = [
        StageFailed("train", 3, "python train.py", "Traceback ..."),
        OutputMissing("train", "model.pkl"),
        StageOverstepped("train", "dvc.lock"),
        StageCancelled("train"),
        StageTimedOut("train", 2.5),
        StageOutOfMemory("train", "1g"),
        ConfigError("limit over the worker's ceiling"),
        WorkspaceError("dep missing"),
        UserError("bad spec"),
    ]
    assert {type(e).wire_kind for e in sent} <= set(errors.WIRE_KINDS)
    for exc in sent:
        back = failure_from_dict(failure_to_dict(exc), "train")
        assert type(back) is type(exc), exc
        assert str(exc) in str(back)
        assert back.exit_status == exc.exit_status
    infra = failure_from_dict(failure_to_dict(StoreError("the store is gone")), "train")
    assert type(infra) is RemoteInfrastructureError and str(infra) == "the store is gone"
    # What a Redis writer sends instead: never a traceback, never its own class.
    for odd in ({"kind": "failed", "exit_code": "x"}, {"kind": "nope"}, {}, {"kind": None}):
        assert type(failure_from_dict(odd, "train")) is RemoteError
