"""Job specs cross process boundaries as JSON: round trip, and every bad field refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.jobspec import InvalidJobSpec, JobSpec, OutRequest

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
)


def test_round_trip_through_json() -> None:
    assert JobSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outs": [3]}, "'outs' must hold mappings"),
        ({"outs": [{"path": "o", "repo_path": "../o"}]}, "'outs.repo_path' escapes"),
        ({"wdir": "../.."}, "'wdir' escapes"),
        ({"deps": [{"path": "/etc/passwd", "md5": "x"}]}, "'deps.path' is not a relative"),
        ({"deps": "x"}, "'deps' must be a list"),
        ({"env": {"A": 1}}, "'env' must map strings to strings"),
        ({"params": {"p": 3}}, "'params' must map files to mappings"),
        ({"lines": ["a\x00b"]}, "'lines' must be a list of strings without NUL"),
        ({"cmd": 5}, "'cmd' must be a string or a list of strings"),
        ({"image": None}, "'image' must be a string"),
    ],
)
def test_bad_fields_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    spec = {**SPEC.to_dict(), **change}
    with pytest.raises(InvalidJobSpec, match=message):
        JobSpec.from_dict(spec)
