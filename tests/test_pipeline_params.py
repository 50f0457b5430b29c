"""Params values: exactly the `params` block DVC writes into dvc.lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from executor.errors import PipelineError
from executor.pipeline import (
    ParamSpec,
    ParamsReader,
    Stage,
    _merge_params,
    load_pipeline,
    merge_params,
    params_values,
)
from tests.test_pipeline_oracle import dvc_repo, write

SHARED = Path(__file__).resolve().parent / "data" / "dvc-vectors"

PARAMS_YAML = """\
zeta: last
lr: 1e-3
flag: yes
octal: 010
real_octal: 0o10
time: 12:30
label: naïve
train: {epochs: 2, lr: 0.1, nested: {b: 1, a: [1, {x: null}]}}
list: [a, b, c]
prep: {size: 10, factor: 3}
"""

STAGES = """\
stages:
  flat:
    cmd: echo flat
    params: [train.epochs, lr, list.1, prep.size, train.nested.a.1.x]
  whole_dict:
    cmd: echo whole
    params: [train, zeta, flag, octal, real_octal, time, label]
  files:
    cmd: echo files
    params:
      - {other.json: [p.q, top]}
      - {cfg.toml: null}
      - prep
      - {b.yaml: []}
      - {a.yaml: [k]}
  whole_default:
    cmd: echo default
    params: [lr, {params.yaml: null}, {params.yaml: [ignored]}]
  in_sub:
    cmd: echo sub
    wdir: sub
    params: [s, {../params.yaml: [lr]}]
"""


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A repository and the dvc.lock that `dvc repro` wrote for it."""
    from dvc.repo import Repo

    root = dvc_repo(
        tmp_path_factory.mktemp("params"),
        {
            "params.yaml": PARAMS_YAML,
            "dvc.yaml": STAGES,
            "other.json": '{"top": 1.5, "p": {"q": [1, "two"]}, "z": true}',
            "cfg.toml": 'k = 1\nf = 1e-3\n[t]\nz = "s"\n',
            "b.yaml": "y: 1\nx: {b: 2, a: 1}\n",
            "a.yaml": "k: v\n",
            "sub/params.yaml": "s: 2\n",
        },
    )
    with Repo(str(root)) as repo:
        repo.reproduce(all_pipelines=True)
    lock = YAML(typ="safe", pure=True).load((root / "dvc.lock").read_text())
    return root, lock["stages"]


def _ordered(value: Any) -> Any:
    """Dicts as item lists, so comparisons see key order too."""
    if isinstance(value, dict):
        return [(key, _ordered(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def test_params_blocks_match_dvc_lock(repro: tuple[Path, dict[str, Any]]) -> None:
    root, lock = repro
    pipeline = load_pipeline(root)
    reader = ParamsReader(root)
    assert set(lock) == set(pipeline.stages)
    for name, stage in pipeline.stages.items():
        got = reader.values(stage)
        assert _ordered(got) == _ordered(lock[name]["params"]), name
        assert params_values(root, stage) == got


def test_yaml_1_2_values_and_types(repro: tuple[Path, dict[str, Any]]) -> None:
    root, _ = repro
    values = params_values(root, load_pipeline(root).stages["whole_dict"])["params.yaml"]
    assert values["flag"] == "yes" and values["octal"] == 10 and values["real_octal"] == 8
    assert values["time"] == "12:30" and values["label"] == "naïve"
    flat = params_values(root, load_pipeline(root).stages["flat"])["params.yaml"]
    assert flat == {"list.1": "b", "lr": 0.001, "prep.size": 10, "train.epochs": 2} | {
        "train.nested.a.1.x": None
    }
    assert type(flat["lr"]) is float


def test_fixture_lock_entries(tmp_path: Path) -> None:
    root = tmp_path / "fixture"
    shutil.copytree(SHARED / "fixture", root, symlinks=True)
    vectors = json.loads((SHARED / "vectors.json").read_text())
    pipeline = load_pipeline(root)
    for name, stage in pipeline.stages.items():
        expected = vectors["stages"][name]["lock_entry"]["params"]
        assert _ordered(params_values(root, stage)) == _ordered(expected), name


def test_merge_params_follows_dvc() -> None:
    from dvc.dependency import _merge_params as dvc_merge

    cases: list[list[Any]] = [
        ["a", "b.c"],
        ["a", {"params.yaml": None}, {"params.yaml": ["x"]}],
        [{"f.yaml": ["k"]}, "a", {"f.yaml": ["j", "k"]}, {"g.json": []}],
        [{"f.yaml": ["k"], "g.yaml": None}, {"g.yaml": ["x"]}, "z"],
        [{"params.yaml": []}, "ignored"],
    ]
    for entries in cases:
        expected = {
            name: (list(dict.fromkeys(keys)) or None) for name, keys in dvc_merge(entries).items()
        }
        got = {
            spec.file: None if spec.keys is None else list(spec.keys)
            for spec in merge_params(entries)
        }
        assert list(got.items()) == list(expected.items()), entries
    assert _merge_params is merge_params


@pytest.mark.parametrize(
    "entries",
    [[3], [{"f.yaml": "k"}], [{"f.yaml": [1]}], [{1: ["k"]}]],
)
def test_merge_params_rejects_malformed_entries(entries: list[Any]) -> None:
    with pytest.raises(PipelineError):
        merge_params(entries)


def _stage(*params: ParamSpec, wdir: str = ".") -> Stage:
    return Stage(name="s", dvcfile="dvc.yaml", cmd="true", wdir=wdir, params=params)


@pytest.mark.parametrize(
    ("files", "spec", "message"),
    [
        ({"params.yaml": "a: 1\n"}, ParamSpec("params.yaml", ("b",)), "param 'b' is missing"),
        ({"params.yaml": "a: {b: 1}\n"}, ParamSpec("params.yaml", ("a.c",)), "'a.c' is missing"),
        ({}, ParamSpec("params.yaml", ("a",)), "params file 'params.yaml' does not exist"),
        ({}, ParamSpec("x.json", None), "params file 'x.json' does not exist"),
        (
            {"cfg.yaml": "a: 1\nwhen: 2020-01-01\n"},
            ParamSpec("cfg.yaml", None),
            "Unsupported value of type 'date' in 'cfg.yaml:when'",
        ),
        (
            {"c.toml": "[t]\nd = 2020-01-01\n"},
            ParamSpec("c.toml", ("t",)),
            "Unsupported value of type 'date' in 'c.toml:t.d'",
        ),
        ({"p.json": "{bad"}, ParamSpec("p.json", None), "unable to read 'p.json'"),
        ({"p.yaml": "a: [1\n"}, ParamSpec("p.yaml", None), "p.yaml:2: invalid YAML"),
        ({"p.py": "A = 1\n"}, ParamSpec("p.py", None), "Python params files"),
        (
            {"p.yaml": "a: {b: 1, c: 2}\n"},
            ParamSpec("p.yaml", ("a.*",)),
            "param 'a.*' matches more than one value in 'p.yaml'",
        ),
    ],
)
def test_params_errors_name_stage_file_and_key(
    tmp_path: Path, files: dict[str, str], spec: ParamSpec, message: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(PipelineError) as caught:
        params_values(tmp_path, _stage(spec))
    assert message in str(caught.value)
    assert str(caught.value).startswith("stage 's':")


def test_reader_parses_each_file_once(tmp_path: Path) -> None:
    write(tmp_path, {"params.yaml": "a: 1\nb: 2\n"})
    reader = ParamsReader(tmp_path)
    first = reader.values(_stage(ParamSpec("params.yaml", ("a",))))
    (tmp_path / "params.yaml").write_text("a: 9\nb: 9\n")
    second = reader.values(_stage(ParamSpec("params.yaml", ("a", "b"))))
    assert first == {"params.yaml": {"a": 1}}
    assert second == {"params.yaml": {"a": 1, "b": 2}}  # from the cache, not the new file
    assert params_values(tmp_path, _stage(ParamSpec("params.yaml", ("a",)))) == {
        "params.yaml": {"a": 9}
    }


def test_wdir_relative_files_and_default_first(tmp_path: Path) -> None:
    write(tmp_path, {"sub/params.yaml": "x: 1\n", "sub/a.yaml": "y: 2\n", "z.yaml": "q: 3\n"})
    stage = _stage(
        ParamSpec("a.yaml", ("y",)),
        ParamSpec("params.yaml", ("x",)),
        ParamSpec("../z.yaml", None),
        wdir="sub",
    )
    values = params_values(tmp_path, stage)
    assert list(values) == ["params.yaml", "../z.yaml", "a.yaml"]
    assert values == {"params.yaml": {"x": 1}, "../z.yaml": {"q": 3}, "a.yaml": {"y": 2}}
