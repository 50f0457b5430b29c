"""Templating against DVC itself: every stage name, cmd, path and param must match."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.errors import PipelineError
from executor.pipeline import load_pipeline
from executor.pipeline.interpolation import parse_expression
from tests.test_pipeline_oracle import dvc_error, dvc_repo, dvc_view, our_view

PARAMS = """\
lr: 0.001
small: 1e-5
flags: {b: true, c: false, n: 1, s: "a b", l: [1, "x y"], nested: {k: v}, e: {}, none: null}
bools: [true, false]
models: {small: {size: 1}, large: {size: 9}}
seeds: [1, 2, 3]
mixed: [{a: 1}, [2]]
word: abc
"""

DVC_YAML = r"""
vars:
  - other.yaml:extra,d
  - inline: {x: 3}
    files: [a.txt, b.txt]
stages:
  plain:
    desc: lr is ${lr}
    meta: {executor: {image: "python:${inline.x}"}, raw: [1, {a: b}]}
    cmd: python train.py --lr ${lr} --small ${small} ${flags}
    deps: ["${files[0]}", "data/${inline.x}.csv", "${ files[1] }"]
    outs: ["out/${extra}.txt", {"m-${lr}.json": {cache: false, persist: true}}]
    metrics: [{"${word}.json": {cache: false}}]
    plots: [{p.csv: {x: step, y: loss}}]
    params: [lr, {other.yaml: [extra]}]
  listcmd:
    cmd: ["echo ${flags}", 'echo \${lr} ${d.b} \\${x}', "echo ${bools[1]} ${flags.none}"]
  fe_list:
    foreach: ${seeds}
    do:
      cmd: echo ${item}
      outs: ["seed-${item}.txt"]
  fe_bools:
    foreach: ${bools}
    do: {cmd: "echo ${item}"}
  fe_lit:
    foreach: [true, 1.5, null, x, x, "${word}", "${bools[0]}"]
    do: {cmd: "echo ${item}"}
  fe_dict:
    foreach: ${models}
    do:
      cmd: echo ${key} ${item.size} ${item}
      wdir: ${key}
  fe_litdict:
    foreach: {p: 1, 7: [1], true: x}
    do: {cmd: "echo ${key}"}
  fe_composite:
    foreach: ${mixed}
    do: {cmd: "echo composite"}
  mx:
    matrix:
      m: [small, large]
      s: ${seeds}
      b: [true, {k: 1}, [2]]
    cmd: echo ${item.m} ${item.s} ${key}
    deps: ["${item.m}.csv"]
  mx_ref:
    matrix:
      flag: ${bools}
      chars: abc
    cmd: echo ${item.flag} ${item.chars}
  stagevars:
    wdir: sub
    vars: [local.yaml, {loc: 4}]
    cmd: echo ${here} ${loc} ${lr}
    deps: [../data/x.csv]
  frozen:
    cmd: echo frozen
    frozen: true
    always_changed: true
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dvc_repo(
        tmp_path_factory.mktemp("templating"),
        {
            "params.yaml": PARAMS,
            "other.yaml": "extra: 5\nd: {b: 2, c: [1, 2]}\n",
            "dvc.yaml": DVC_YAML,
            "sub/local.yaml": "here: 7\n",
            "sub/params.yaml": "sublr: 2\nsubl: [a, b]\n",
            "sub/dvc.yaml": """\
                stages:
                  s:
                    cmd: echo ${sublr} ${subl[1]}
                    wdir: ..
                    deps: [sub/x]
                    vars: [sub/params.yaml]
                  t:
                    foreach: ${subl}
                    do:
                      cmd: echo ${item}
                      params: [{../params.yaml: [lr]}]
                """,
            "deeper/nested/dvc.yaml": "stages:\n  n:\n    cmd: echo n\n    wdir: ../..\n",
        },
    )


def test_every_stage_matches_dvc(repo: Path) -> None:
    expected = dvc_view(repo)
    got = our_view(load_pipeline(repo))
    assert set(got) == set(expected)
    for address, stage in expected.items():
        assert got[address] == stage, address


def test_stage_order_within_each_file_matches_dvc(repo: Path) -> None:
    expected = list(dvc_view(repo))
    got = list(load_pipeline(repo).stages)
    for dvcfile in ("", "sub/dvc.yaml:", "deeper/nested/dvc.yaml:"):
        mine = [a for a in got if a.startswith(dvcfile) and (dvcfile or ":" not in a)]
        theirs = [a for a in expected if a.startswith(dvcfile) and (dvcfile or ":" not in a)]
        assert mine == theirs


def test_spot_checks(repo: Path) -> None:
    """A few values spelled out, so a shared mistake with the oracle would still show."""
    stages = load_pipeline(repo).stages
    assert stages["plain"].cmd == (
        "python train.py --lr 0.001 --small 1e-05 --b --n 1 --s 'a b' --l 1 'x y' "
        "--nested.k v --none None"
    )
    assert stages["listcmd"].cmd[1] == "echo ${lr} 2 \\${x}"
    assert [a for a in stages if a.startswith("fe_bools")] == ["fe_bools@True", "fe_bools@False"]
    assert "fe_lit@true" in stages and "fe_lit@None" in stages and "fe_lit@abc" in stages
    assert "fe_lit@True" in stages  # "${bools[0]}" is a reference: DVC names it with str()
    assert stages["fe_dict@large"].wdir == "large"
    assert stages["fe_dict@large"].group == "fe_dict"
    assert stages["mx@small-2-b1"].cmd == "echo small 2 small-2-b1"
    assert stages["mx_ref@True-a"].cmd == "echo true a"
    assert stages["plain"].meta == {"executor": {"image": "python:3"}, "raw": [1, {"a": "b"}]}
    assert stages["plain"].executor_meta == {"image": "python:3"}
    assert stages["plain"].outs[2].plot_props == {} and stages["plain"].outs[3].plot_props == {
        "x": "step",
        "y": "loss",
    }
    assert stages["sub/dvc.yaml:s"].wdir == "."
    assert stages["deeper/nested/dvc.yaml:n"].line == 2


ERROR_CASES = {
    "undefined": ("stages:\n  a:\n    cmd: echo ${nope.x}\n", "undefined variable 'nope.x'"),
    "list_in_cmd": ("vars: [{l: [1]}]\nstages:\n  a:\n    cmd: echo ${l}\n", "type 'list'"),
    "list_in_list_cmd": ("vars: [{l: [1]}]\nstages:\n  a:\n    cmd: ['${l}']\n", "'list'"),
    "dict_in_deps": (
        "vars: [{d: {a: 1}}]\nstages:\n  a:\n    cmd: echo\n    deps: ['${d}']\n",
        "type 'dict'",
    ),
    "dict_in_meta": ("vars: [{d: {a: 1}}]\nstages:\n  a:\n    cmd: x\n    meta: ${d}\n", "dict"),
    "foreach_int": (
        "vars: [{n: 3}]\nstages:\n  a:\n    foreach: ${n}\n    do: {cmd: x}\n",
        "expected a list or mapping, got int",
    ),
    "redefine": ("vars: [{lr: 2}]\nstages:\n  a:\n    cmd: echo ${lr}\n", "cannot redefine 'lr'"),
    "stage_redefine": (
        "stages:\n  a:\n    vars: [{lr: 2}]\n    cmd: echo ${lr}\n",
        "cannot redefine 'lr'",
    ),
    "partial_after_whole": (
        "vars: [params.yaml:lr]\nstages:\n  a:\n    cmd: echo ${lr}\n",
        "already loaded",
    ),
    "reserved_item": (
        "stages:\n  a:\n    foreach: [1]\n    do:\n      vars: [{item: 2}]\n      cmd: x\n",
        "reserved key item",
    ),
    "missing_vars_file": ("vars: [nope.yaml]\nstages:\n  a:\n    cmd: x\n", "does not exist"),
    "missing_vars_key": ("vars: [o.yaml:zz]\nstages:\n  a:\n    cmd: x\n", "could not find 'zz'"),
    "interpolated_vars": ("vars: ['${lr}.yaml']\nstages:\n  a:\n    cmd: x\n", "not allowed"),
    "bad_expression": ("stages:\n  a:\n    cmd: echo ${a..b}\n", "invalid expression"),
    "empty_expression": ("stages:\n  a:\n    cmd: echo ${}\n", "invalid expression"),
    "key_only_for_dicts": (
        "stages:\n  a:\n    foreach: [1, 2]\n    do: {cmd: 'echo ${key}'}\n",
        "undefined variable 'key'",
    ),
    "nested_list_in_cmd_dict": (
        "vars: [{d: {a: [[1]]}}]\nstages:\n  a:\n    cmd: echo ${d}\n",
        "nested iterable",
    ),
}


def test_errors_where_dvc_fails(tmp_path: Path) -> None:
    for case, (dvc_yaml, message) in ERROR_CASES.items():
        root = dvc_repo(
            tmp_path / case,
            {"dvc.yaml": dvc_yaml, "params.yaml": "lr: 1\n", "o.yaml": "k: 1\n"},
        )
        assert dvc_error(root) is not None, f"{case}: DVC accepts it"
        with pytest.raises(PipelineError) as caught:
            load_pipeline(root)
        text = str(caught.value)
        assert message in text, f"{case}: {text}"
        assert text.startswith("dvc.yaml:"), f"{case}: {text}"
        assert caught.value.line is not None, case


def test_undefined_variable_names_file_line_stage_and_variable(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: [1, 2]\n    do:\n      cmd: echo ${item.x}\n"
    )
    with pytest.raises(PipelineError) as caught:
        load_pipeline(root)
    assert str(caught.value) == (
        "sub/dvc.yaml:5: stage 'train@1': cmd: undefined variable 'item.x' in '${item.x}'"
    )


def test_date_in_params_yaml_fails_like_dvc(tmp_path: Path) -> None:
    root = dvc_repo(
        tmp_path, {"params.yaml": "a: 1\nl: [x, {when: 2020-01-01}]\n", "dvc.yaml": DATELESS}
    )
    assert "Unsupported value of type 'date' in" in (dvc_error(root) or "")
    with pytest.raises(
        PipelineError, match=r"Unsupported value of type 'date' in 'params.yaml:l.1.when'"
    ):
        load_pipeline(root)


DATELESS = "stages:\n  a:\n    cmd: echo ${a}\n"


EXPRESSIONS = [
    "a",
    " a.b ",
    "a . b",
    "a[0]",
    "a[ 0 ]",
    "a [0]",
    "a[0].b",
    "a[0][1]",
    "a.b[c.d]",
    "a b",
    "",
    " ",
    "a.",
    ".a",
    "a[]",
    "a[0",
    "a]",
    "a..b",
    "a[0]b",
    "a\tb",
    "$x",
    "a[b]c",
    "a[0] ",
    "a[0] .b",
    "a[0]  [1] ",
    "a[0]\t.b",
    "x[ ]",
    "a. .b",
    "[0]",
    "a[0]. b",
    "a-b_c",
    "ä.ö",
]


def test_expression_grammar_matches_dvcs_parser() -> None:
    from dvc.parsing.interpolate import parse_expr

    for text in EXPRESSIONS:
        try:
            expected: str | None = parse_expr(text)
        except Exception:  # DVC raises pyparsing errors
            expected = None
        try:
            got: str | None = parse_expression(text)
        except PipelineError:
            got = None
        assert got == expected, repr(text)
