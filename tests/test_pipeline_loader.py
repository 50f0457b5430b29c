"""Finding and validating dvc.yaml files: one-line errors with file, line and stage."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from executor.errors import PipelineError
from executor.pipeline import find_dvcfiles, load_pipeline, yamldoc
from tests.test_pipeline_oracle import dvc_error, dvc_repo, write


def test_finds_every_dvc_yaml_root_first_skipping_what_dvc_skips(tmp_path: Path) -> None:
    stage = "stages:\n  s:\n    cmd: echo\n"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(
        tmp_path,
        {
            "b/dvc.yaml": stage,
            "a-b/dvc.yaml": stage,
            "a/z/dvc.yaml": stage,
            "a/dvc.yaml": stage,
            "dvc.yaml": stage,
            ".git/dvc.yaml": stage,
            ".venv/lib/dvc.yaml": stage,  # git-ignored
            ".hid/dvc.yaml": stage,  # hidden, not ignored: DVC reads it
            "c/.dvc/dvc.yaml": stage,
            "d/dvc.yaml/not-a-file": "",
            "sub/.dvc/config": "",  # `dvc init --subdir`: a project of its own
            "sub/dvc.yaml": stage,
            "ign/dvc.yaml": stage,
            "e/.dvcignore": "x\n",
            "e/x/dvc.yaml": stage,
            "gi/dvc.yaml": stage,
            ".gitignore": ".venv/\ngi/\n",
            ".dvcignore": "ign/\n",
        },
    )
    (tmp_path / "link").symlink_to("b")
    expected = [
        "dvc.yaml",
        ".hid/dvc.yaml",
        "a/dvc.yaml",
        "a/z/dvc.yaml",
        "a-b/dvc.yaml",
        "b/dvc.yaml",
    ]
    assert find_dvcfiles(tmp_path) == expected
    pipeline = load_pipeline(tmp_path)
    assert list(pipeline.stages) == ["s", *(f"{path}:s" for path in expected[1:])]
    assert pipeline.stages["a/z/dvc.yaml:s"].dvcfile == "a/z/dvc.yaml"
    assert pipeline.stages["a/z/dvc.yaml:s"].wdir == "a/z"
    assert pipeline.root == str(tmp_path)


def test_a_dvc_yaml_inside_an_output_folder_is_not_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "dvc.yaml": "stages:\n  s:\n    cmd: echo\n    outs: [out]\n",
            "out/dvc.yaml": "stages:\n  t:\n    cmd: echo\n    outs: [o]\n",
        },
    )
    assert list(load_pipeline(tmp_path).stages) == ["s"]


def test_empty_and_stageless_files_are_fine(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "dvc.yaml": "",
            "m/dvc.yaml": "metrics: [m.json]\nplots: [p.csv, {p2.csv: {x: a}}]\nparams: [x.yaml]\n"
            "artifacts: {model: {path: m.pkl, type: model}}\ndatasets: [{name: d, type: dvc}]\n",
        },
    )
    assert load_pipeline(tmp_path).stages == {}


INVALID = {
    "unknown_field": ("stages:\n  a:\n    cmd: x\n    dep: [a]\n", 4, "unknown field 'dep'"),
    "deps_int": ("stages:\n  a:\n    cmd: x\n    deps: 3\n", 4, "'deps' must be a list"),
    "deps_item": ("stages:\n  a:\n    cmd: x\n    deps:\n      - [a]\n", 5, "'deps' must be"),
    "deps_null": ("stages:\n  a:\n    cmd: x\n    deps:\n", 4, "'deps' must be a list"),
    "deps_ref": ("stages:\n  a:\n    cmd: x\n    deps: ${l}\n", 4, "'deps' must be a list"),
    "no_cmd": ("stages:\n  a:\n    deps: [x]\n", 2, "'cmd' is required"),
    "cmd_int": ("stages:\n  a:\n    cmd: 3\n", 3, "'cmd' must be"),
    "frozen_str": ("stages:\n  a:\n    cmd: x\n    frozen: yes\n", 4, "'frozen' must be"),
    "out_flag": ("stages:\n  a:\n    cmd: x\n    outs:\n      - o: {cach: false}\n", 5, "flag"),
    "out_flag_type": (
        "stages:\n  a:\n    cmd: x\n    outs:\n      - o:\n          cache: 'no'\n",
        6,
        "'cache' of 'o' must be",
    ),
    "out_null_flags": ("stages:\n  a:\n    cmd: x\n    outs:\n      - o:\n", 5, "must be a map"),
    "plot_prop_on_out": ("stages:\n  a:\n    cmd: x\n    outs:\n      - o: {x: a}\n", 5, "'x'"),
    "top_key": ("stage:\n  a:\n    cmd: x\n", 1, "unknown top-level key 'stage'"),
    "stages_list": ("stages:\n  - a\n", 1, "'stages' must be a mapping"),
    "stage_str": ("stages:\n  a: echo\n", 2, "stage 'a' must be a mapping"),
    "foreach_extra": (
        "stages:\n  a:\n    foreach: [1]\n    wdir: x\n    do: {cmd: x}\n",
        4,
        "not allowed beside foreach",
    ),
    "foreach_no_do": ("stages:\n  a:\n    foreach: [1]\n", 2, "needs 'do'"),
    "do_no_cmd": ("stages:\n  a:\n    foreach: [1]\n    do: {wdir: x}\n", 4, "'cmd' is required"),
    "matrix_int": ("stages:\n  a:\n    matrix: {x: 1}\n    cmd: x\n", 3, "must be a list"),
    "vars_int": ("vars: [1]\nstages: {}\n", 1, "vars must be a list"),
    "params_int": ("stages:\n  a:\n    cmd: x\n    params: [1]\n", 4, "'params' must be"),
    "labels": ("stages:\n  a:\n    cmd: x\n    outs: [{o: {labels: [1]}}]\n", 4, "'labels'"),
    "top": ("- a\n", None, "expected a mapping at the top level"),
}


def test_invalid_files_fail_here_and_in_dvc(tmp_path: Path) -> None:
    for case, (text, line, message) in INVALID.items():
        root = dvc_repo(tmp_path / case, {"dvc.yaml": text, "params.yaml": "l: [a]\n"})
        assert dvc_error(root) is not None, f"{case}: DVC accepts it"
        with pytest.raises(PipelineError) as caught:
            load_pipeline(root)
        assert message in str(caught.value), f"{case}: {caught.value}"
        assert caught.value.path == "dvc.yaml", case
        assert caught.value.line == line, f"{case}: {caught.value}"
        assert "\n" not in str(caught.value)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"sub/dvc.yaml": "stages:\n  a:\n    cmd: x\n   deps: [a]\n"})
    with pytest.raises(PipelineError) as caught:
        load_pipeline(tmp_path)
    assert str(caught.value).startswith("sub/dvc.yaml:4: invalid YAML")


PATHS_OK = """\
stages:
  a:
    cmd: echo
    wdir: sub
    deps: [../dep.txt, ./x/, inside-link/f]
    outs: [../out.txt]
    params: [{../params.yaml: [k]}]
"""


def test_paths_inside_the_repository_are_fine(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PATHS_OK, "params.yaml": "k: 1\n", "sub/real/f": ""})
    os.symlink("real", tmp_path / "sub" / "inside-link")
    stage = load_pipeline(tmp_path).stages["a"]
    assert stage.wdir == "sub"
    assert stage.deps == ("../dep.txt", "./x/", "inside-link/f")
    assert [stage.repo_path(dep) for dep in stage.deps] == ["dep.txt", "sub/x", "sub/inside-link/f"]


@pytest.mark.parametrize(
    ("dvcfile", "field", "message"),
    [
        ("dvc.yaml", "deps: [/etc/passwd]", "absolute paths are not allowed"),
        ("dvc.yaml", "deps: ['C:\\data']", "absolute paths are not allowed"),
        ("sub/dvc.yaml", "deps: [../../x]", "outside of the repository"),
        ("dvc.yaml", "outs: [{../o: {cache: false}}]", "outside of the repository"),
        ("dvc.yaml", "wdir: ..", "outside of the repository"),
        ("sub/dvc.yaml", "params: [{../../p.yaml: [a]}]", "outside of the repository"),
        ("dvc.yaml", "deps: [s3://bucket/key]", "external (URL) paths are not supported"),
        ("dvc.yaml", "outs: [escape/secret]", "through a symlink"),
        ("dvc.yaml", "deps: [escape]", "through a symlink"),
        ("dvc.yaml", "deps: ['']", "empty path"),
        ("dvc.yaml", 'deps: ["a\\0b"]', "NUL byte"),
    ],
)
def test_paths_that_escape_are_rejected(
    tmp_path: Path, dvcfile: str, field: str, message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write(tmp_path / "repo", {dvcfile: f"stages:\n  a:\n    cmd: echo\n    {field}\n"})
    os.symlink(outside, root / "escape")
    with pytest.raises(PipelineError) as caught:
        load_pipeline(root)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{dvcfile}:4: stage 'a'")


def test_nul_byte_in_cmd_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": 'stages:\n  a:\n    cmd: ["echo a", "echo \\0 b"]\n'})
    with pytest.raises(PipelineError, match=r"dvc.yaml:3: stage 'a': cmd: contains a NUL byte"):
        load_pipeline(tmp_path)


def test_templated_values_must_still_be_strings(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"dvc.yaml": "vars: [{n: 3}]\nstages:\n  a:\n    cmd: echo\n    outs: ['${n}']\n"},
    )
    with pytest.raises(PipelineError, match=r"dvc.yaml:5: stage 'a': outs\[0\]: must be a string"):
        load_pipeline(tmp_path)


def test_dict_cmd_from_a_reference_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": "vars: [{d: {a: 1}}]\nstages:\n  a:\n    cmd: ${d}\n"})
    with pytest.raises(PipelineError, match="cmd: must be a string or a list of strings"):
        load_pipeline(tmp_path)


def test_a_name_holding_the_foreach_separator_is_an_error(tmp_path: Path) -> None:
    text = "stages:\n  a@1:\n    cmd: x\n  a:\n    foreach: [1]\n    do: {cmd: y}\n"
    write(tmp_path, {"dvc.yaml": text})
    with pytest.raises(PipelineError, match=r"dvc.yaml:2: stage name 'a@1' must not contain '@'"):
        load_pipeline(tmp_path)


def test_stage_fields_are_kept(tmp_path: Path) -> None:
    text = """\
stages:
  train:
    desc: trains
    meta: {executor: {image: "python:3.11", gpus: 1}, anything: [1, {a: b}]}
    cmd: |
      python a.py
      python b.py
    frozen: true
    always_changed: true
    outs:
      - model.pkl:
          cache: false
          persist: true
          push: false
          remote: store
          desc: the model
          labels: [a]
          meta: {k: v}
      - model.pkl:
          type: model
    plots:
      - loss.csv: {x: step, y: loss, template: linear, cache: false}
"""
    write(tmp_path, {"dvc.yaml": text})
    stage = load_pipeline(tmp_path).stages["train"]
    assert stage.cmd == "python a.py\npython b.py\n"
    assert stage.lines == ("python a.py", "python b.py")
    assert stage.frozen and stage.always_changed and stage.desc == "trains"
    assert stage.executor_meta == {"image": "python:3.11", "gpus": 1}
    assert stage.line == 2
    model, loss = stage.outs
    assert (model.cache, model.persist, model.push, model.remote) == (False, True, False, "store")
    assert model.annotations == {"desc": "the model", "type": "model", "labels": ["a"]} | {
        "meta": {"k": "v"}
    }
    assert (loss.kind, loss.cache, loss.plot_props) == (
        "plots",
        False,
        {"template": "linear", "x": "step", "y": "loss"},
    )


def test_thousand_stage_pipeline_loads_through_the_libyaml_path(tmp_path: Path) -> None:
    lines = ["stages:"]
    for index in range(1000):
        lines += [
            f"  s{index}:",
            f"    cmd: python step.py --i {index} > out/o{index}.txt",
            "    deps:",
            f"      - out/o{index - 1}.txt" if index else "      - data/in.txt",
            "      - src/step.py",
            "    params:",
            "      - prep.size",
            "    outs:",
            f"      - out/o{index}.txt",
            "    meta:",
            "      executor:",
            "        image: python:3.11",
        ]
    text = "\n".join(lines) + "\n"
    write(tmp_path, {"dvc.yaml": text, "params.yaml": "prep: {size: 1}\n"})
    # The speed comes from libyaml events (bench/ measures it); here: that path is taken.
    binding = yamldoc._libyaml()
    assert binding is not None
    assert yamldoc._Builder(False, binding).build(text).data["stages"]["s999"]["outs"] == [
        "out/o999.txt"
    ]
    pipeline = load_pipeline(tmp_path)
    assert len(pipeline.stages) == 1000
    assert pipeline.stages["s999"].executor_meta["image"] == "python:3.11"


@pytest.mark.parametrize(
    ("vars_item", "message"),
    [("../v.yaml", "outside of the repository"), ("escape/v.yaml", "leads outside")],
)
def test_vars_files_stay_inside_the_repository(
    tmp_path: Path, vars_item: str, message: str
) -> None:
    write(tmp_path, {"v.yaml": "x: 1\n", "outside/v.yaml": "x: 1\n"})
    root = write(tmp_path / "repo", {"dvc.yaml": f"vars: [{vars_item}]\nstages: {{}}\n"})
    os.symlink(tmp_path / "outside", root / "escape")
    with pytest.raises(PipelineError, match=message) as caught:
        load_pipeline(root)
    assert str(caught.value).startswith("dvc.yaml:1: vars: ")
