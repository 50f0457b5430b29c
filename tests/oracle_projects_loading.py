"""Oracle projects for how DVC loads a pipeline and walks a repository (issue 16,
differences 2, 3 and 4 and their relatives): subrepos, glob and non-string params keys,
`.dvcignore` in subfolders, git-ignored and hidden folders, links to folders.

Run by tests/test_fidelity_loading_oracle.py with the machinery of tests/test_dvc_oracle.py.
`dvc_targets=("-P",)` makes `dvc repro` collect the dvc.yaml files itself, so the oracle
decides which of them belong to the pipeline.
"""

from __future__ import annotations

from tests.oracle_projects import Project

SUBREPO_STAGE = """\
stages:
  train:
    cmd: echo sub > ../model.txt
    outs:
      - ../model.txt
"""

SUBREPOS = Project(
    features=(
        "a subrepo's dvc.yaml is not collected (its outs overlap the parent's)",
        "a subrepo inside a dep folder is not hashed",
        "a dep folder that is a subrepo directly below the root: hashed as empty",
        "a file dep inside a subrepo: hashed",
    ),
    dvc_targets=("-P",),
    change={"data/a.txt": "a2\n", "data/nested/more.txt": "not part of the dep\n"},
    files={
        "data/a.txt": "a\n",
        "data/inner/b.txt": "b\n",
        "data/nested/.dvc/config": "",  # `dvc init --subdir` inside a dep folder
        "data/nested/.dvcignore": "",
        "data/nested/c.txt": "in a subrepo\n",
        "sub/.dvc/config": "",
        "sub/.dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
        "sub/.dvcignore": "",
        "sub/dvc.yaml": SUBREPO_STAGE,
        "sub/data.txt": "in the subrepo\n",
        "dvc.yaml": """\
stages:
  train:
    cmd: find data -type f | LC_ALL=C sort > model.txt
    deps:
      - data
    outs:
      - model.txt
  summary:
    cmd: cat model.txt > summary.txt
    deps:
      - model.txt
    outs:
      - summary.txt
  peek:
    cmd: echo peek > peek.txt
    deps:
      - sub
      - sub/data.txt
    outs:
      - peek.txt
""",
    },
)

PARAMS_GLOBS = Project(
    features=(
        "a glob key matching one subtree (dataset_kwargs.moons*)",
        "a ? and a [] pattern",
        "a negative list index (layers.-1)",
        "a glob matching nothing beside one that matches",
    ),
    dvc_targets=("-P",),
    change={
        "params.yaml": """\
dataset_kwargs:
  moons_kwargs: {n: 200, noise: 0.1}
  circles: {n: 5}
opt: {lr: 0.02, wd: 0}
layers: [8, 16, 64]
seed3: 3
"""
    },
    files={
        "params.yaml": """\
dataset_kwargs:
  moons_kwargs: {n: 100, noise: 0.1}
  circles: {n: 5}
opt: {lr: 0.01, wd: 0}
layers: [8, 16, 32]
seed3: 3
""",
        "dvc.yaml": """\
stages:
  data:
    cmd: echo moons > data.txt
    params:
      - dataset_kwargs.moons*
      - opt.l?
      - seed[0-9]
      - layers.-1
    outs:
      - data.txt
""",
    },
)

PARAMS_SCALAR_KEYS = Project(
    features=(
        "int keys in a params mapping ({-2: …, -1: …}) locked as ints",
        "hex, float, bool and null keys",
        "an int key looked up by a dotted key (layer_overwrites.-2)",
        "JSON and TOML params with number-like string keys",
    ),
    dvc_targets=("-P",),
    change={
        "params.yaml": """\
layer_overwrites: {-2: {lr: 0.5}, -1: {lr: 0.1}}
hex: {0x10: sixteen}
floats: {1.5: a, 2: b}
flags: {true: on, false: off}
nothing: {null: none}
""",
    },
    files={
        "params.yaml": """\
layer_overwrites: {-2: {lr: 0.5}, -1: {lr: 0.2}}
hex: {0x10: sixteen}
floats: {1.5: a, 2: b}
flags: {true: on, false: off}
nothing: {null: none}
""",
        "p.json": '{"k": {"-2": 1, "1": 2, "true": 3}}\n',
        "p.toml": '[k]\n"-2" = 1\n"1" = 2\n',
        "dvc.yaml": """\
stages:
  whole:
    cmd: echo whole > whole.txt
    params:
      - layer_overwrites
      - hex
      - floats
      - flags
      - nothing
      - p.json:
          - k
      - p.toml:
    outs:
      - whole.txt
  dotted:
    cmd: echo dotted > dotted.txt
    params:
      - layer_overwrites.-2
      - layer_overwrites.-1.lr
      - hex.16
      - flags.True
    outs:
      - dotted.txt
""",
    },
)

WALK_RELATIVES = Project(
    features=(
        "a .dvcignore in a subfolder, above a dep folder",
        "a dvc.yaml in a .dvcignore'd folder is not collected",
        "a dvc.yaml in a git-ignored folder is not collected",
        "a dvc.yaml in a hidden folder is collected",
        "a link to a folder inside a dep folder",
        "a dep that is a link to a folder",
        "a git-ignored file inside a dep folder (hashed: DVC's walk ignores .gitignore)",
    ),
    dvc_targets=("-P",),
    change={"data/sub/kept.txt": "kept2\n", "data/sub/skip.log": "still skipped\n"},
    links={"data/sub/linked": "deeper", "alias": "data/sub"},
    files={
        ".dvcignore": "ignored/\n",
        ".gitignore": "gitignored/\n*.tmp\n",
        "data/sub/scratch.tmp": "git ignores me, DVC hashes me\n",
        "data/.dvcignore": "*.log\n",  # above the dep folder: DVC refuses one inside it
        "data/sub/kept.txt": "kept\n",
        "data/sub/skip.log": "skipped\n",
        "data/sub/deeper/x.txt": "x\n",
        "ignored/dvc.yaml": "stages:\n  never:\n    cmd: echo never > ../never.txt\n"
        "    outs: [../model.txt]\n",
        "gitignored/dvc.yaml": "stages:\n  never:\n    cmd: echo never > ../never.txt\n"
        "    outs: [../model.txt]\n",
        ".hidden/dvc.yaml": """\
stages:
  hidden:
    cmd: cat ../model.txt > seen.txt
    deps:
      - ../model.txt
    outs:
      - seen.txt
""",
        "dvc.yaml": """\
stages:
  train:
    cmd: find data/sub | LC_ALL=C sort > model.txt
    deps:
      - data/sub
    outs:
      - model.txt
  through_alias:
    cmd: echo alias > alias.txt
    deps:
      - alias
    outs:
      - alias.txt
""",
    },
)

PROJECTS: dict[str, Project] = {
    "subrepos": SUBREPOS,
    "params_globs": PARAMS_GLOBS,
    "params_scalar_keys": PARAMS_SCALAR_KEYS,
    "walk_relatives": WALK_RELATIVES,
}
