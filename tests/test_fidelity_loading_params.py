"""Params keys are looked up exactly as DVC looks them up: `dpath.get(doc, key, ".")`
(dvc/dependency/param.py, `read_param_file` with flatten=True). dpath is DVC's own
dependency, so it is the oracle here: same value, or both missing, or both ambiguous.
"""

from __future__ import annotations

from typing import Any

import dpath
import pytest
from ruamel.yaml import YAML

from executor.errors import PipelineError
from executor.pipeline.paramlookup import lookup_param

DOC = YAML(typ="safe", pure=True).load("""\
dataset_kwargs:
  moons_kwargs: {n: 100, noise: 0.1}
  circles: {n: 5}
  moons_extra: 1
opt: {lr: 0.01, wd: 0, l1: 2}
layers: [8, 16, 32]
nested: [[1, 2], {a: {lr: 3}}]
layer_overwrites: {-2: {lr: 0.5}, -1: {lr: 0.2}, 0x10: sixteen}
floats: {1.5: a, 2: b}
flags: {true: on, false: off}
nothing: {null: none}
both: {1: int, '1': str}
'a[1]': bracket
seed3: 3
seed4: 4
deep: {x: {y: {lr: 1}}, z: {lr: 2}}
""")

KEYS = [
    "opt",
    "opt.lr",
    "opt.l?",
    "opt.l*",
    "opt.nope",
    "dataset_kwargs.moons*",
    "dataset_kwargs.moons_k*",
    "dataset_kwargs.*.n",
    "dataset_kwargs.c*.n",
    "layers.0",
    "layers.-1",
    "layers.-3",
    "layers.3",
    "layers.-4",
    "layers.*",
    "nested.1.a.lr",
    "nested.0.-1",
    "layer_overwrites.-2",
    "layer_overwrites.-1.lr",
    "layer_overwrites.16",
    "layer_overwrites.016",
    "layer_overwrites.0x10",
    "floats.1.5",
    "floats.2",
    "flags.True",
    "flags.true",
    "flags.1",
    "nothing.None",
    "nothing.null",
    "both.1",
    "a[1]",
    "seed[3]",
    "seed[0-9]",
    "seed?",
    "deep.**.lr",
    "deep.x.**",
    "deep.z.**.lr",
    ".opt.lr",
    "",
]


def dvc_reads(key: str) -> tuple[str, Any]:
    try:
        return "value", dpath.get(DOC, key, separator=".")
    except KeyError:
        return "missing", None
    except ValueError:
        return "ambiguous", None


def executor_reads(key: str, cache: dict[int, bool] | None = None) -> tuple[str, Any]:
    try:
        return "value", lookup_param(DOC, key, "params.yaml", cache)
    except PipelineError as exc:
        return ("ambiguous" if "more than one" in str(exc) else "missing"), None


@pytest.mark.parametrize("key", KEYS)
def test_a_key_reads_what_dpath_reads(key: str) -> None:
    assert executor_reads(key) == dvc_reads(key)


def test_the_cache_of_string_keyed_dicts_does_not_change_answers() -> None:
    """The reader shares one cache over all lookups in a document: asked twice, in order and
    reversed, every answer stays dpath's."""
    cache: dict[int, bool] = {}
    for key in [*KEYS, *reversed(KEYS)]:
        assert executor_reads(key, cache) == dvc_reads(key), key
    assert cache
