"""The fast YAML path must give exactly what ruamel's YAML 1.2 safe loader gives (DVC's reader)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from ruamel.yaml import YAML

from executor.errors import PipelineError
from executor.pipeline import yamldoc

CORPUS = [
    "a: 1e-3\nb: yes\nc: 010\nd: 0o10\ne: 12:30\nf: on\ng: ~\nh: .inf\ni: -.INF\nj: 0x1F\n",
    "a: 1_000\nb: 1.5e+3\nc: .5\nd: +12\ne: -0\nf: 0b101\ng: 1.0\nh: 'quoted 1'\ni: \"2\"\n",
    "when: 2020-01-01\nat: 2001-12-14t21:59:43.10-05:00\nnull1: null\nnull2: Null\nempty:\n",
    "t: [true, True, TRUE, false, y, n, No, off]\n",
    "s: |\n  line one\n  line two\nf: >\n  folded\n  text\nk: |-\n  kept\n",
    "x: &anchor {b: 1, c: [1, 2]}\ny: *anchor\nz: [*anchor, *anchor]\n",
    "- a\n- [b, c]\n- {d: e}\n- - nested\n  - list\n",
    "merge: {<<: {a: 1, b: 2}, b: 3}\n",
    "bin: !!binary aGVsbG8=\nst: !!str 123\nset: !!set {a, b}\n",
    "%YAML 1.1\n---\na: yes\nb: 010\nc: 1e-3\n",
    '"quoted key": 1\n? complex\n: 2\nunicode: naïve ✓\nesc: "tab\\there \\u00e9 \\/"\n',
    "1: int key\n2.5: float key\ntrue: bool key\nnull: null key\n",
    "",
    "# only a comment\n",
    "plain scalar\n",
    "\ufeffbom: 1\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\na: 2\n",
    "a: [1, 2\n",
    "a: *missing\n",
    "a: =\n",
    "a:\n  - b\n   - c\n",
    "? [1, 2]\n: list key\n",
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", CORPUS)
def test_fast_path_matches_ruamel_safe_loader(text: str) -> None:
    try:
        expected = YAML(typ="safe", pure=True).load(text)
    except Exception:
        with pytest.raises(PipelineError, match="invalid YAML"):
            yamldoc.parse(text, "f.yaml")
        return
    got = yamldoc.parse(text, "f.yaml").data
    assert got == expected
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert _same(got[key], value), key


@pytest.mark.parametrize("text", [*CORPUS[:7], CORPUS[10], *CORPUS[12:16]])
def test_ordinary_documents_never_fall_back_to_ruamel(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert yamldoc._libyaml() is not None, "ruamel.yaml.clib (a dependency) provides libyaml here"
    expected = YAML(typ="safe", pure=True).load(text)

    def no_fallback(*args: Any) -> Any:
        raise AssertionError("fell back to ruamel")

    monkeypatch.setattr(yamldoc, "_with_ruamel", no_fallback)
    assert yamldoc.parse(text, "f.yaml", lines=True).data == expected


def test_lines_are_the_same_on_both_paths() -> None:
    text = (
        "vars:\n  - params.yaml\nstages:\n  train:\n    cmd: python train.py\n"
        "    deps:\n      - a\n      - b\n    outs:\n      - m.pkl:\n          cache: false\n"
        "  gen:\n    foreach: [1, 2]\n    do:\n      cmd: echo ${item}\n"
    )
    fast = yamldoc.parse(text, "dvc.yaml", lines=True)
    slow = yamldoc.parse(text, "dvc.yaml", lines=True, fast=False)
    assert fast.lines == slow.lines
    assert fast.line("stages", "train") == 4
    assert fast.line("stages", "train", "deps", 1) == 8
    assert fast.line("stages", "train", "outs", 0, "m.pkl", "cache") == 11
    assert fast.line("stages", "gen", "do", "cmd") == 15
    assert fast.line("stages", "train", "nope", 3) == 4  # nearest known ancestor


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(PipelineError) as caught:
        yamldoc.parse("stages:\n  a:\n    cmd: [echo\n", "sub/dvc.yaml")
    assert caught.value.path == "sub/dvc.yaml"
    assert caught.value.line == 4
    assert str(caught.value).startswith("sub/dvc.yaml:4: invalid YAML")


def test_duplicate_keys_are_an_error_as_in_ruamel() -> None:
    with pytest.raises(PipelineError, match="duplicate key") as caught:
        yamldoc.parse("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", "dvc.yaml")
    assert caught.value.line == 4


def test_unreadable_bytes_are_a_pipeline_error(tmp_path: Any) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(PipelineError, match="not valid UTF-8"):
        yamldoc.read(path, "params.yaml")
