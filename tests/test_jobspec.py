"""Job specs cross process boundaries as JSON: round trip, and every bad field refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.errors import (
    ConfigError,
    ExecutorError,
    InvalidJobSpec,
    OutputMissing,
    RemoteError,
    RemoteInfrastructureError,
    StageCancelled,
    StageFailed,
    StageOutOfMemory,
    StageTimedOut,
    StoreError,
    WorkspaceError,
)
from executor.jobresult import JobResult, failure_from_dict, failure_to_dict
from executor.jobspec import Input, JobSpec, OutRequest

SPEC = JobSpec(
    address="sub/dvc.yaml:train@1",
    dvc_stage="sub/dvc.yaml:train@1",
    cmd=["python train.py", "echo done"],
    lines=("python train.py", "echo done"),
    image="executor/python:bookworm",
    wdir="sub",
    deps=({"path": "../data.csv", "hash": "md5", "md5": "0" * 32, "size": 3},),
    params={"params.yaml": {"lr": 0.001, "label": "naïve"}},
    outs=(OutRequest("model.pkl", "sub/model.pkl", committed=True),),
    cacheable=True,
    executor_meta={"memory": "2g"},
    env={"SEED": "1"},
    inputs=(
        Input("data.csv", "0" * 32),
        Input("sub/tools", "a" * 32 + ".dir", executables=("bin/run",), folders=("cache/empty",)),
    ),
)


def test_round_trip_through_json() -> None:
    assert JobSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outs": [3]}, "'outs' must hold mappings"),
        ({"outs": [{"path": "o", "repo_path": "../o"}]}, "'outs.repo_path' escapes"),
        ({"wdir": "../.."}, "'wdir' escapes"),
        ({"outs": [{"path": "o", "repo_path": "other"}]}, "'outs.repo_path' 'other' is not"),
        ({"wdir": "sub", "outs": [{"path": "o", "repo_path": "o"}]}, "is not the output 'o'"),
        ({"outs": [{"path": "o", "repo_path": "sub/o", "kind": "x"}]}, "'outs.kind' must be"),
        ({"deps": [{"path": "/etc/passwd", "md5": "x"}]}, "'deps.path' is not a relative"),
        ({"deps": "x"}, "'deps' must be a list"),
        ({"env": {"A": 1}}, "'env' must map strings to strings"),
        ({"params": {"p": 3}}, "'params' must map files to mappings"),
        ({"lines": ["a\x00b"]}, "'lines' must be a list of strings without NUL"),
        ({"cmd": 5}, "'cmd' must be a string or a list of strings"),
        ({"image": None}, "'image' must be a string"),
        ({"inputs": [{"path": "../../x", "md5": "0" * 32}]}, "'inputs.path' escapes"),
        ({"inputs": [{"path": ".", "md5": "0" * 32}]}, "'inputs.path' names the workspace"),
        ({"inputs": [{"path": "x", "md5": "../../etc"}]}, "'inputs.md5' is not an md5"),
        ({"inputs": [{"path": "x", "md5": "A" * 32}]}, "'inputs.md5' is not an md5"),
        ({"inputs": ["x"]}, "'inputs' must hold mappings"),
        (
            {"inputs": [{"path": "x", "md5": "0" * 32, "executables": ["../../bin/sh"]}]},
            "'inputs.executables' must list relative paths",
        ),
        (
            {"inputs": [{"path": "x", "md5": "0" * 32 + ".dir", "folders": ["../../etc"]}]},
            "'inputs.folders' must list relative paths",
        ),
    ],
)
def test_bad_fields_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    spec = {**SPEC.to_dict(), **change}
    with pytest.raises(InvalidJobSpec, match=message):
        JobSpec.from_dict(spec)


def test_results_round_trip_through_json() -> None:
    digest = "sha256:" + "ab" * 32
    result = JobResult(
        "train", {"cmd": "x", "outs": [{"path": "o", "md5": "1" * 32}]}, digest, 1.5, "e" * 64
    )
    assert JobResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    with pytest.raises(InvalidJobSpec, match="'entry' must be a mapping"):
        JobResult.from_dict({**result.to_dict(), "entry": []})
    with pytest.raises(InvalidJobSpec, match="'image_digest' is not an image id"):
        JobResult.from_dict({**result.to_dict(), "image_digest": "sha256:../../x"})
    with pytest.raises(InvalidJobSpec, match="'run_key' is not a run-cache key"):
        JobResult.from_dict({**result.to_dict(), "run_key": "../" * 20})


@pytest.mark.parametrize(
    ("outs", "cacheable"),
    [
        ([{"path": "o", "repo_path": "sub/o"}], True),
        ([{"path": "o", "repo_path": "sub/o", "persist": True}], False),
        ([{"path": "o", "repo_path": "sub/o", "cached": False}], False),
        ([{"path": "o", "repo_path": "sub/o"}, {"path": "m", "repo_path": "sub/m",
          "cached": False, "kind": "metrics"}], True),
    ],
)  # fmt: skip
def test_whether_a_run_is_cached_is_dvcs_rule_not_the_senders_word(
    outs: list[dict[str, Any]], cacheable: bool
) -> None:
    spec = JobSpec.from_dict({**SPEC.to_dict(), "outs": outs, "cacheable": True})
    assert spec.run_cacheable() is cacheable
    assert JobSpec.from_dict({**spec.to_dict(), "cacheable": False}).run_cacheable() is False


@pytest.mark.parametrize(
    "error",
    [
        StageFailed("train", 3, "python train.py", "Traceback\nValueError\n"),
        StageFailed("train", 137, None, ""),
        OutputMissing("train", "model.pkl"),
        StageCancelled("train"),
        StageTimedOut("train", 2.5),
        StageOutOfMemory("train", "512m"),
        ConfigError("image 'x' cannot be pulled"),
        WorkspaceError("input path '../x' escapes the workspace"),
    ],
)
def test_a_jobs_failure_comes_back_as_the_same_error(error: ExecutorError) -> None:
    wire = json.loads(json.dumps(failure_to_dict(error)))
    back = failure_from_dict(wire, "train")
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert vars(back) == vars(error)


def test_infrastructure_and_odd_failures_keep_their_message_and_exit_class() -> None:
    back = failure_from_dict(failure_to_dict(StoreError("bucket gone")), "train")
    assert isinstance(back, RemoteInfrastructureError) and str(back) == "bucket gone"
    odd = failure_from_dict({"kind": "failed", "exit_code": "not a number"}, "train")
    assert isinstance(odd, RemoteError) and "train" in str(odd)
    assert isinstance(failure_from_dict({}, "train"), RemoteError)
