"""Fixture projects for the DVC-oracle tests (`dvc repro` and `executor run` must agree on
each), and how to build one and observe what a run left behind.

Each project is a declarative tree of files (like DVC's `tmp_dir.gen`) plus the paths to make
executable. Commands use only POSIX sh and tools that both the host (dash and coreutils, for
`dvc repro`) and busybox (executor's container) have, with byte-stable output: `sort` runs
under `LC_ALL=C`, `wc` padding is stripped, and nothing writes `$DVC_ROOT`, `pwd` or another
absolute path into an output (the copies compared live in different directories).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.docker_env import containers_under
from tests.fixtures.repos import init_repo, write_tree


@dataclass(frozen=True)
class Project:
    """A repository to build, and what DVC is expected to do with it beyond the defaults."""

    files: Mapping[str, str | bytes]  # a key ending in "/" is an empty directory
    features: tuple[str, ...] = ()
    executable: tuple[str, ...] = ()
    uncached: tuple[str, ...] = ()  # stages DVC never puts in the run-cache
    # Cached, but no clean copy can hit the entry: its key holds the dep as the command left it.
    unrestorable: tuple[str, ...] = ()
    always_changed: tuple[str, ...] = ()  # stages `dvc status` always reports
    frozen: tuple[str, ...] = ()
    dvc_targets: tuple[str, ...] = ()  # `dvc repro` targets that cover every stage
    change: Mapping[str, str | bytes] = field(default_factory=dict)  # files for a second run
    links: Mapping[str, str] = field(default_factory=dict)  # symlink path -> target


def build(root: Path, project: Project) -> Path:
    """`git init` + `.dvc/` (as `dvc init`), then the project's files and modes."""
    root.mkdir(parents=True)
    init_repo(root)
    write_tree(root, project.files)
    for rel in project.executable:
        (root / rel).chmod(0o755)
    for rel, target in project.links.items():
        (root / rel).symlink_to(target)
    return root


Node = tuple[str, bytes, bool]  # kind ("file", "dir", "link"), content or target, exec bit


def workspace(root: Path, skip: tuple[str, ...] = (".git", ".dvc")) -> dict[str, Node]:
    """Every path under root (not in `skip`) with its kind, bytes and exec bit."""
    found: dict[str, Node] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if (rel_folder / d).as_posix() not in skip]
        for name in dirs + files:
            path = Path(folder, name)
            rel = (rel_folder / name).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path).encode(), False)
            elif path.is_dir():
                found[rel] = ("dir", b"", False)
            else:
                mode = path.stat().st_mode
                found[rel] = ("file", path.read_bytes(), bool(mode & stat.S_IXUSR))
    return found


def cache_objects(root: Path) -> dict[str, tuple[int, bytes]]:
    """Object path under `.dvc/cache/files` -> its mode bits and bytes."""
    base = root / ".dvc" / "cache" / "files"
    return {
        p.relative_to(base).as_posix(): (stat.S_IMODE(p.stat().st_mode), p.read_bytes())
        for p in base.rglob("*")
        if p.is_file()
    }


def run_entries(root: Path) -> dict[str, bytes]:
    """Run-cache entry path under `.dvc/cache/runs` -> bytes."""
    base = root / ".dvc" / "cache" / "runs"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def lock_files(root: Path) -> dict[str, str]:
    """Every dvc.lock under root -> its text (compared as text so a failure shows a diff)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes().decode()
        for p in root.rglob("dvc.lock")
        if ".dvc" not in p.relative_to(root).parts
    }


def snapshot(root: Path) -> dict[str, object]:
    """What a failed or refused run must leave unchanged: files, cache objects, run entries."""
    return {
        "workspace": workspace(root, skip=(".git", ".dvc/tmp")),
        "objects": cache_objects(root),
        "runs": run_entries(root),
    }


FILES_AND_DIRS = Project(
    change={"data/tree/sub/b.txt": "bee\nbuzz\nbzz\n"},
    features=(
        "file deps",
        "nested dir dep and out",
        "dep inside an output dir",
        "isexec dep",
        "executable out",
        "empty dir out",
        "non-ASCII and spaced names",
    ),
    files={
        "data/in.txt": "hello\nworld\n",
        "data/tree/a.txt": "a\n",
        "data/tree/sub/b.txt": "bee\nbuzz\n",
        "data/tree/sub/deep/c.txt": "c\n",
        "data/tree/sub/deep/with space.txt": "space\n",
        "data/tree/naïve.txt": "naïve\n",
        "data/crlf.txt": b"one\r\ntwo\r\n",
        "scripts/count.sh": '#!/bin/sh\n# count lines of $1\nwc -l < "$1" | tr -d " "\n',
        "dvc.yaml": """\
stages:
  copytree:
    cmd: mkdir -p out && cp -r data/tree out/tree && printf 'x' > out/tree/sub/extra.txt
    deps:
      - data/tree
    outs:
      - out/tree
  listing:
    cmd: find data/tree -type f | LC_ALL=C sort > listing.txt
    deps:
      - data/tree
    outs:
      - listing.txt
  upper:
    cmd: mkdir -p out && tr a-z A-Z < data/in.txt > out/upper.txt && cat data/crlf.txt >> out/upper.txt
    deps:
      - data/in.txt
      - data/crlf.txt
    outs:
      - out/upper.txt
  count:
    cmd: ./scripts/count.sh out/tree/sub/b.txt > count.txt
    deps:
      - scripts/count.sh
      - out/tree/sub/b.txt
    outs:
      - count.txt
  tool:
    cmd: mkdir -p bin && printf '#!/bin/sh\\necho hi\\n' > bin/tool.sh && chmod +x bin/tool.sh
    deps:
      - data/in.txt
    outs:
      - bin/tool.sh
  empty:
    cmd: mkdir -p out/empty/nothing
    deps:
      - data/in.txt
    outs:
      - out/empty
  nested_out:
    cmd: mkdir -p out/nest/a/b/c && cp listing.txt out/nest/a/b/c/l.txt && cp count.txt out/nest/a/n.txt
    deps:
      - listing.txt
      - count.txt
    outs:
      - out/nest
""",
    },
    executable=("scripts/count.sh",),
)

YAML_PARAMS = """\
lr: 1e-3
flag: yes
octal: 010
oct2: 0o10
clock: 12:30
name: naïve
nothing: null
big: 1e16
small: 1.0e-5
neg: -0.0
lst: [1, 2.5, x, true]
args:
  epochs: 3
  verbose: true
  quiet: false
  rate: 0.5
  tag: abc
model:
  layers: 3
  size: 7
  act: relu
  nested: {b: [x, y], a: 1}
train:
  epochs: 2
  lr: 0.01
"""

PARAMS_YAML = Project(
    # `size` inside a whole-dict param is not in the run-cache key: a hit
    change={"params.yaml": YAML_PARAMS.replace("  size: 7", "  size: 8")},
    features=(
        "params.yaml YAML 1.2 values",
        "flat dotted keys",
        "whole-dict param",
        "size key inside a dict param",
        "${} from params.yaml",
        "dict unpacking in cmd",
    ),
    files={
        "params.yaml": YAML_PARAMS,
        "in.txt": "x\n",
        "dvc.yaml": """\
stages:
  show:
    cmd: echo "${lr} ${flag} ${octal} ${oct2} ${clock} ${name} ${big} ${small}" > show.txt
    deps:
      - in.txt
    params:
      - lr
      - flag
      - octal
      - oct2
      - clock
      - name
      - nothing
      - big
      - small
      - neg
      - lst
    outs:
      - show.txt
  model:
    cmd: echo ${model.layers} ${model.act} ${train.epochs} > model.txt
    deps:
      - show.txt
    params:
      - model
      - train.epochs
      - train.lr
    outs:
      - model.txt
  unpack:
    cmd: echo train ${args} > unpack.txt
    params:
      - args
    outs:
      - unpack.txt
""",
    },
)

PARAMS_JSON_TOML = Project(
    change={
        "cfg.toml": 'title = "t"\nratio = 1e-3\n\n[section]\na = 1\nb = 3.5\nc = [1, 2]\n\n[section.inner]\nd = "x"\n'
    },
    features=(
        "params in JSON",
        "params in TOML",
        "whole-file params {file: []}",
        "vars from JSON and TOML files",
        "params in a custom YAML file",
    ),
    files={
        "cfg.json": '{"opt": {"lr": 0.5, "betas": [0.9, 0.99], "name": "ü"}, "seed": 42, "flag": true, "none": null}\n',
        "cfg.toml": 'title = "t"\nratio = 1e-3\n\n[section]\na = 1\nb = 2.5\nc = [1, 2]\n\n[section.inner]\nd = "x"\n',
        "other.json": '{"z": 1, "a": {"k": "v", "size": 3}, "m": [1, {"n": 2}]}\n',
        "custom.yaml": "alpha:\n  beta: on\n  gamma: 0x1F\nzeta: ~\n",
        "in.txt": "data\n",
        "dvc.yaml": """\
vars:
  - cfg.json
  - cfg.toml:section
stages:
  json:
    cmd: echo ${opt.lr} ${seed} ${opt.name} ${flag} > json.txt
    deps:
      - in.txt
    params:
      - cfg.json:
          - opt.lr
          - seed
          - opt
          - flag
          - none
    outs:
      - json.txt
  toml:
    cmd: echo ${section.b} ${section.inner.d} > toml.txt
    deps:
      - json.txt
    params:
      - cfg.toml:
          - section
          - title
          - ratio
      - custom.yaml:
          - alpha.beta
          - alpha
          - zeta
    outs:
      - toml.txt
  whole:
    cmd: cat json.txt toml.txt > whole.txt
    deps:
      - json.txt
      - toml.txt
    params:
      - other.json: []
      - cfg.toml:
    outs:
      - whole.txt
""",
    },
)

VARS_INTERPOLATION = Project(
    change={"vars.yaml": "who:\n  name: world\n  times: 5\nsubdir: work\n"},
    features=(
        "vars: file and inline",
        "stage-level vars",
        "${} in cmd, deps, outs, wdir",
        "params.yaml implicit interpolation",
    ),
    files={
        "params.yaml": "data_file: data/in.txt\nfactor: 3\nout_dir: results\n",
        "vars.yaml": "who:\n  name: world\n  times: 2\nsubdir: work\n",
        "data/in.txt": "input\n",
        "work/local.txt": "local\n",
        "dvc.yaml": """\
vars:
  - vars.yaml
  - greeting: hi
    suffix: txt
stages:
  greet:
    cmd: mkdir -p ${out_dir} && echo ${greeting} ${who.name} ${who.times} ${factor} > ${out_dir}/greet.${suffix}
    deps:
      - ${data_file}
    params:
      - factor
    outs:
      - ${out_dir}/greet.${suffix}
  in_wdir:
    vars:
      - local_name: from_stage
    wdir: ${subdir}
    cmd: cat local.txt ../${out_dir}/greet.${suffix} > ${local_name}.${suffix}
    deps:
      - local.txt
      - ../${out_dir}/greet.${suffix}
    outs:
      - ${local_name}.${suffix}
""",
    },
)

FOREACH_MATRIX = Project(
    # new matrix stages; the old entries stay in dvc.lock
    change={"params.yaml": "models:\n  small: {width: 1}\n  large: {width: 4}\nlrs: [0.1, 0.01]\n"},
    features=(
        "foreach over a list",
        "foreach over a dict",
        "foreach over a list of dicts",
        "foreach over ${} params",
        "matrix",
        "matrix with list values",
        "DVC_STAGE",
    ),
    files={
        "params.yaml": "models:\n  small: {width: 1}\n  large: {width: 4}\nlrs: [0.1, 1e-3]\n",
        "seed.txt": "seed\n",
        "dvc.yaml": """\
stages:
  fl:
    foreach: [alpha, beta]
    do:
      cmd: echo ${item} $DVC_STAGE > fl_${item}.txt
      deps:
        - seed.txt
      outs:
        - fl_${item}.txt
  fd:
    foreach:
      us:
        lang: en
        n: 1
      fr:
        lang: fr
        n: 2
    do:
      cmd: echo ${key} ${item.lang} ${item.n} $DVC_STAGE > fd_${key}.txt
      deps:
        - fl_alpha.txt
      outs:
        - fd_${key}.txt
  fdl:
    foreach:
      - x: 1
      - x: 2
    do:
      cmd: echo ${item.x} $DVC_STAGE > fdl_${item.x}.txt
      deps:
        - seed.txt
      outs:
        - fdl_${item.x}.txt
  fp:
    foreach: ${models}
    do:
      cmd: echo ${key} ${item.width} > fp_${key}.txt
      deps:
        - seed.txt
      params:
        - models.${key}.width
      outs:
        - fp_${key}.txt
  mx:
    matrix:
      opt: [sgd, adam]
      lr: ${lrs}
    cmd: echo ${item.opt} ${item.lr} $DVC_STAGE > mx_${item.opt}_${item.lr}.txt
    deps:
      - seed.txt
    outs:
      - mx_${item.opt}_${item.lr}.txt
  mxl:
    matrix:
      cfg:
        - [1, 2]
        - [3]
      flag: [on, off]
    cmd: echo $DVC_STAGE > mxl_${item.flag}_${item.cfg[0]}.txt
    deps:
      - seed.txt
    outs:
      - mxl_${item.flag}_${item.cfg[0]}.txt
""",
    },
)

CMD_FORMS_WDIR = Project(
    change={"sub/local.txt": "local, changed\n"},
    features=(
        "multi-line | cmd with a blank line",
        "list cmd",
        "wdir",
        "nested wdir with ../ outs",
        "./ and trailing / paths verbatim",
        "lines do not share state",
    ),
    files={
        "in.txt": "in\n",
        "sub/local.txt": "local\n",
        "sub/deeper/.keep": "",
        "dd/f.txt": "f\n",
        "dvc.yaml": """\
stages:
  block:
    cmd: |
      mkdir -p out
      echo one > out/block.txt

      X=set; echo "x=$X" >> out/block.txt
      echo "x=$X" >> out/block.txt
      cat in.txt >> out/block.txt
    deps:
      - in.txt
    outs:
      - out/block.txt
  listcmd:
    cmd:
      - mkdir -p out
      - printf '%s\\n' "$DVC_STAGE" > out/list.txt
      - cd sub && pwd | sed 's|.*/||' >> ../out/list.txt
      - test -f in.txt && echo still-at-root >> out/list.txt
    deps:
      - in.txt
    outs:
      - out/list.txt
  wdir:
    wdir: sub
    cmd: cat ../in.txt local.txt > made.txt && pwd | sed 's|.*/||' > dirname.txt
    deps:
      - ../in.txt
      - local.txt
    outs:
      - made.txt
      - dirname.txt
  deeper:
    wdir: sub/deeper
    cmd: mkdir -p ../../out && cat ../made.txt > ../../out/from_deeper.txt
    deps:
      - ../made.txt
    outs:
      - ../../out/from_deeper.txt
  dotted:
    cmd: mkdir -p ./ddout && cp dd/f.txt ./ddout/g.txt && cp ./in.txt ./dot.txt
    deps:
      - ./in.txt
      - ./dd/
    outs:
      - ./dot.txt
      - ./ddout/
""",
    },
)

RUN_CONDITIONS = Project(
    change={"in.txt": "hi again\n"},
    features=(
        "persist: true out",
        "always_changed: true",
        "stage without deps",
        "cache: false out",
        "cache: false metric",
        "plots",
        "output flags",
    ),
    uncached=("persist", "always", "nodeps", "plain"),
    always_changed=("always",),
    files={
        "in.txt": "hi\n",
        "log.txt": "start\n",
        "dvc.yaml": """\
stages:
  persist:
    cmd: echo run >> log.txt
    deps:
      - in.txt
    outs:
      - log.txt:
          persist: true
  always:
    always_changed: true
    cmd: cat in.txt > always.txt
    deps:
      - in.txt
    outs:
      - always.txt
  nodeps:
    cmd: echo x > nodeps.txt
    outs:
      - nodeps.txt
  plain:
    cmd: cat in.txt in.txt > plain.txt
    deps:
      - in.txt
    outs:
      - plain.txt:
          cache: false
  measure:
    desc: metrics and plots with flags
    meta:
      owner: someone
    cmd: >-
      printf '{"n": 2}\\n' > metrics.json && printf 'x,y\\n1,2\\n' > plot.csv
      && echo kept > kept.txt
    deps:
      - in.txt
    outs:
      - kept.txt:
          push: false
          desc: an output with flags
    metrics:
      - metrics.json:
          cache: false
    plots:
      - plot.csv:
          x: x
          y: y
""",
    },
)

SEVERAL_DVCYAML = Project(
    change={"sub/params.yaml": "k: 3\nsub_only: yes\n"},
    features=(
        "dvc.yaml in subfolders",
        "cross-file dependencies",
        "same stage name in two files",
        "params.yaml beside a nested dvc.yaml",
        "DVC_STAGE path/dvc.yaml:name",
    ),
    dvc_targets=("dvc.yaml", "sub/dvc.yaml", "sub/deeper/dvc.yaml", "other/dvc.yaml"),
    files={
        "data.txt": "root data\n",
        "params.yaml": "k: 1\n",
        "dvc.yaml": """\
stages:
  prep:
    cmd: cat data.txt > prepared.txt && echo $DVC_STAGE >> prepared.txt
    deps:
      - data.txt
    params:
      - k
    outs:
      - prepared.txt
""",
        "sub/params.yaml": "k: 2\nsub_only: yes\n",
        "sub/dvc.yaml": """\
stages:
  use:
    cmd: cat ../prepared.txt > used.txt && echo ${k} $DVC_STAGE >> used.txt
    deps:
      - ../prepared.txt
    params:
      - k
      - sub_only
    outs:
      - used.txt
""",
        "sub/deeper/dvc.yaml": """\
stages:
  prep:
    cmd: mkdir -p res && cat ../used.txt > res/final.txt && echo $DVC_STAGE >> res/final.txt
    deps:
      - ../used.txt
    outs:
      - res
""",
        "other/dvc.yaml": """\
stages:
  side:
    cmd: cat ../sub/deeper/res/final.txt ../prepared.txt > side.txt
    deps:
      - ../sub/deeper/res
      - ../prepared.txt
    outs:
      - side.txt
""",
    },
)

STAGE_ORDER = Project(
    features=("stages listed before their upstream", "a diamond", "dvc.lock in DVC's run order"),
    files={
        "in.txt": "in\n",
        "dvc.yaml": """\
stages:
  report:
    cmd: cat left.txt right.txt > report.txt
    deps:
      - left.txt
      - right.txt
    outs:
      - report.txt
  lonely:
    cmd: cat in.txt > lonely.txt
    deps:
      - in.txt
    outs:
      - lonely.txt
  right:
    cmd: cat base.txt base.txt > right.txt
    deps:
      - base.txt
    outs:
      - right.txt
  left:
    cmd: tr a-z A-Z < base.txt > left.txt
    deps:
      - base.txt
    outs:
      - left.txt
  base:
    cmd: cat in.txt in.txt > base.txt
    deps:
      - in.txt
    outs:
      - base.txt
""",
    },
)

FROZEN = Project(
    features=("frozen: true with its output present and no lock entry", "downstream of frozen"),
    frozen=("frozen",),
    files={
        "in.txt": "hi\n",
        "frozen.txt": "given\n",
        "dvc.yaml": """\
stages:
  frozen:
    frozen: true
    cmd: echo should-not-run > frozen.txt
    deps:
      - in.txt
    outs:
      - frozen.txt
  after_frozen:
    cmd: cat frozen.txt frozen.txt > after.txt
    deps:
      - frozen.txt
    outs:
      - after.txt
""",
    },
)

# For `-j`: DVC records x, y, a, b (a is listed first but needs y, which needs x).
CHAIN_AND_BRANCH = Project(
    features=("a chain and an independent stage",),
    files={
        "in.txt": "in\n",
        "dvc.yaml": """\
stages:
  a:
    cmd: cat y.txt y.txt > a.txt
    deps:
      - y.txt
    outs:
      - a.txt
  y:
    cmd: cat x.txt x.txt > y.txt
    deps:
      - x.txt
    outs:
      - y.txt
  x:
    cmd: cat in.txt in.txt > x.txt
    deps:
      - in.txt
    outs:
      - x.txt
  b:
    cmd: tr a-z A-Z < in.txt > b.txt
    deps:
      - in.txt
    outs:
      - b.txt
""",
    },
)

IGNORES_AND_QUOTING = Project(
    features=(
        ".dvcignore in a dir dep and a dir out",
        "a dep directory containing another stage's output",
        "quoted, |- and > folded cmd",
        "cached metric",
        "persist: true directory",
        "list params values",
        "params.yaml as a file dep",
        "executable file inside an output dir",
    ),
    uncached=("pdir",),
    change={"data/sub/y.txt": "y2\n"},
    files={
        ".dvcignore": "*.tmp\n/data/skip/\n",
        "data/keep.txt": "k\n",
        "data/junk.tmp": "junk\n",
        "data/skip/x.txt": "x\n",
        "data/sub/y.txt": "y\n",
        "in.txt": "in\n",
        "dvc.yaml": """\
stages:
  ignoring:
    cmd: mkdir -p gen && cp -r data gen/copy && echo t > gen/copy/made.tmp && printf '#!/bin/sh\\n' > gen/run.sh && chmod +x gen/run.sh
    deps:
      - data
    outs:
      - gen
  quoted:
    cmd: 'printf ''%s: "%s" # not a comment\\n'' a b > quoted.txt'
    deps:
      - in.txt
    outs:
      - quoted.txt
  stripped:
    cmd: |-
      echo one > stripped.txt
      echo two >> stripped.txt
    deps:
      - in.txt
    outs:
      - stripped.txt
  folded:
    cmd: >
      echo folded
      > folded.txt
    deps:
      - in.txt
    outs:
      - folded.txt
  contains:
    cmd: find data -type f | LC_ALL=C sort > contains.txt
    deps:
      - data
    outs:
      - contains.txt
  gen_into_data:
    cmd: echo gen > data/sub/generated.txt
    deps:
      - in.txt
    outs:
      - data/sub/generated.txt
  metric:
    cmd: echo '{"acc":' 0.5} > acc.json
    deps:
      - in.txt
    metrics:
      - acc.json
  pdir:
    cmd: mkdir -p pdir && echo p >> pdir/p.txt
    deps:
      - in.txt
    outs:
      - pdir:
          persist: true
  paramfile:
    cmd: cat params.yaml > pf.txt
    deps:
      - params.yaml
    params:
      - lst
    outs:
      - pf.txt
""",
        "params.yaml": "lst:\n  - {a: 1}\n  - [2, 3]\nempty: {}\n",
    },
)

TOP_LEVEL_AND_WDIR_PARAMS = Project(
    features=(
        "top-level params, metrics, plots and artifacts in dvc.yaml",
        "params.yaml of a wdir stage is the one in its wdir",
        "a params file given as ../params.yaml",
        "vars file beside a nested dvc.yaml",
        "metrics and plots of a stage, cached",
    ),
    dvc_targets=("dvc.yaml", "sub/dvc.yaml"),
    change={"sub/params.yaml": "k: 20\n"},
    files={
        "params.yaml": "k: 1\nroot_only: r\n",
        "custom.yaml": "c: 3\n",
        "data/plain.txt": "plain\n",
        "sub/params.yaml": "k: 2\n",
        "sub/vars.yaml": "greet: hello-from-sub\n",
        "sub/in.txt": "sub in\n",
        "dvc.yaml": """\
params:
  - custom.yaml
metrics:
  - acc.json
plots:
  - plot.csv
artifacts:
  model:
    path: model.txt
    type: model
stages:
  wdir_params:
    wdir: sub
    cmd: echo ${k} > wp.txt
    deps:
      - in.txt
    params:
      - k
      - ../params.yaml:
          - root_only
    outs:
      - wp.txt
  model:
    cmd: echo m > model.txt && echo '{"acc":' 1} > acc.json && printf 'a\\n1\\n' > plot.csv
    deps:
      - data/plain.txt
    outs:
      - model.txt
    metrics:
      - acc.json
    plots:
      - plot.csv
""",
        "sub/dvc.yaml": """\
vars:
  - vars.yaml
stages:
  subvars:
    cmd: echo ${greet} ${k} > sv.txt
    deps:
      - in.txt
    outs:
      - sv.txt
""",
    },
)

SYMLINKS = Project(
    features=(
        "a dep that is a symlink",
        "a dep directory holding a symlinked file and a symlinked folder",
        "an output that the command makes a symlink",
        "an output directory holding a symlink",
    ),
    links={"data/link.txt": "plain.txt", "data/linkdir": "real"},
    files={
        "data/real/f.txt": "f\n",
        "data/plain.txt": "plain\n",
        "dvc.yaml": """\
stages:
  linked_dep:
    cmd: find data -type f | LC_ALL=C sort > linked.txt && cat data/link.txt >> linked.txt
    deps:
      - data
      - data/link.txt
    outs:
      - linked.txt
  alias:
    cmd: ln -s data/plain.txt alias.txt
    deps:
      - data/plain.txt
    outs:
      - alias.txt
  link_in_out:
    cmd: mkdir -p lo && echo target > lo/target.txt && ln -s target.txt lo/link.txt
    deps:
      - data/plain.txt
    outs:
      - lo
""",
    },
)

# Run by DVC 3, then turned into what DVC 2 left behind (see test_dvc_oracle_cli.py).
LEGACY = Project(
    features=("a CRLF text dep", "a binary dep", "a directory output"),
    files={
        "crlf.txt": b"one\r\ntwo\r\n",
        "bin.dat": b"\x00\x01\r\n\xff",
        "dvc.yaml": """\
stages:
  text:
    cmd: wc -l < crlf.txt | tr -d ' ' > text.txt
    deps:
      - crlf.txt
    outs:
      - text.txt
  both:
    cmd: mkdir -p both && cat text.txt bin.dat > both/all.dat
    deps:
      - text.txt
      - bin.dat
    outs:
      - both
""",
    },
)

# Its output depends on hidden.txt, which is not a dep: forced runs add entries to one key.
NONDETERMINISTIC = Project(
    features=("several run-cache entries under one key",),
    files={
        "in.txt": "x\n",
        "dvc.yaml": """\
stages:
  nd:
    cmd: cat in.txt hidden.txt > out.txt
    deps:
      - in.txt
    outs:
      - out.txt
""",
    },
)

# DVC hashes deps again after the command: dvc.lock and the run-cache key see the grown dep.
SELF_MODIFYING_DEP = Project(
    features=("a stage that rewrites its own dependency",),
    unrestorable=("grow",),
    files={
        "data.txt": "a\n",
        "dvc.yaml": """\
stages:
  grow:
    cmd: echo more >> data.txt && cp data.txt out.txt
    deps:
      - data.txt
    outs:
      - out.txt
  after:
    cmd: wc -l < out.txt | tr -d ' ' > lines.txt
    deps:
      - out.txt
    outs:
      - lines.txt
""",
    },
)

# DVC adds no line for an output git already ignores, and escapes gitignore's special characters.
GITIGNORED_OUTPUTS = Project(
    features=("outputs git already ignores", "an output name with gitignore's special characters"),
    files={
        ".gitignore": "ignored/\n*.bin\n",
        "ignored/": "",
        "sub/": "",
        "in.txt": "x\n",
        "dvc.yaml": """\
stages:
  outs:
    cmd: >-
      cp in.txt ignored/a.txt && cp in.txt sub/b.bin && cp in.txt sub/c.txt
      && cp in.txt 'sub/we[i]rd #!.txt'
    deps:
      - in.txt
    outs:
      - ignored/a.txt
      - sub/b.bin
      - sub/c.txt
      - 'sub/we[i]rd #!.txt'
""",
    },
)

PROJECTS: dict[str, Project] = {
    "files_and_dirs": FILES_AND_DIRS,
    "params_yaml": PARAMS_YAML,
    "params_json_toml": PARAMS_JSON_TOML,
    "vars_interpolation": VARS_INTERPOLATION,
    "foreach_matrix": FOREACH_MATRIX,
    "cmd_forms_wdir": CMD_FORMS_WDIR,
    "run_conditions": RUN_CONDITIONS,
    "several_dvcyaml": SEVERAL_DVCYAML,
    "stage_order": STAGE_ORDER,
    "frozen": FROZEN,
    "ignores_and_quoting": IGNORES_AND_QUOTING,
    "top_level_and_wdir_params": TOP_LEVEL_AND_WDIR_PARAMS,
    "symlinks": SYMLINKS,
    "self_modifying_dep": SELF_MODIFYING_DEP,
    "gitignored_outputs": GITIGNORED_OUTPUTS,
}


def containers_using(docker_client: Any, base: Path) -> list[str]:
    """Names of sandbox containers (any process's) that mount a folder under `base`.

    executor runs in a subprocess, so `no_leftover_containers` (which matches this process's
    pid) cannot see its containers; the mount source can.
    """
    return [c.name for c in containers_under(docker_client, base)]


def stage_lines(output: str, marker: str) -> set[str]:
    """Addresses of the stages whose `Running stage` ("ran") or `is cached` ("cached") line
    is in a `dvc repro` or `executor run` output."""
    head, tail = {"ran": ("Running stage '", "':"), "cached": ("Stage '", "' is cached")}[marker]
    return {
        line[len(head) : line.index(tail)]
        for line in output.splitlines()
        if line.startswith(head) and tail in line
    }
