"""Oracle projects for what `dvc repro` writes between stages and when it visits a stage
(issue 16, differences 1 and 5 and their relatives); run by tests/test_fidelity_runner.py.

Each names the stages DVC restores from the run-cache in a clean copy (`restorable`), and a
`change` for a second run. Commands follow tests/oracle_projects.py's rules (POSIX sh and
busybox, byte-stable output, no absolute paths).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    files: Mapping[str, str]
    restorable: tuple[str, ...]  # stages a clean copy with the other tool's cache must not run
    change: Mapping[str, str] = field(default_factory=dict)
    fleet: bool = True  # also compared with `executor submit`


# Difference 1: each output's .gitignore is written right after its stage, so `b`'s folder dep
# hashes out/s1/.gitignore and out/s2/.gitignore (4 files, not 2 or 3).
GITIGNORE_IN_A_DEP_FOLDER = Case(
    files={
        "src.txt": "x\n",
        "dvc.yaml": """\
stages:
  a:
    foreach: [s1, s2]
    do:
      cmd: mkdir -p out/${item} && cat src.txt > out/${item}/a.txt && echo ${item} >> out/${item}/a.txt
      deps: [src.txt]
      outs:
        - out/${item}/a.txt
  b:
    cmd: ls -aR out > b.txt && cat out/s1/.gitignore >> b.txt
    deps:
      - out/
    outs:
      - b.txt
""",
    },
    restorable=("a@s1", "a@s2", "b"),
    change={"src.txt": "y\n"},
)

# The same through a sub/dvc.yaml with its own wdir, and a directory output beside file
# outputs: the .gitignore lines of two stages share one file, in plan order.
GITIGNORE_SHARED_IN_A_SUBFOLDER = Case(
    files={
        "sub/in.txt": "1\n",
        "sub/dvc.yaml": """\
stages:
  one:
    cmd: mkdir -p data/tree && cat in.txt > data/tree/t.txt && cat in.txt > data/one.txt
    deps: [in.txt]
    outs: [data/tree, data/one.txt]
  two:
    cmd: mkdir -p data && echo two > data/two.txt
    deps: [in.txt]
    outs: [data/two.txt]
  use:
    cmd: ls -a data > listing.txt && cat data/.gitignore >> listing.txt
    deps: [data]
    outs: [listing.txt]
""",
    },
    restorable=("sub/dvc.yaml:one", "sub/dvc.yaml:two", "sub/dvc.yaml:use"),
    change={"sub/in.txt": "2\n"},
)

# Difference 5: DVC cuts a frozen stage's upstream edges, so its plan is fr, top, up: `fr`'s
# lock entry records `d` as it was before `up` replaced it.
FROZEN_VISITED_FIRST = Case(
    files={
        "src.txt": "new\n",
        "d/old.txt": "old\n",
        "fr.txt": "made before\n",
        "dvc.yaml": """\
stages:
  top:
    cmd: cat fr.txt > top.txt
    deps: [fr.txt]
    outs: [top.txt]
  up:
    cmd: mkdir -p d && cat src.txt > d/new.txt
    deps: [src.txt]
    outs: [d]
  fr:
    cmd: ls d > fr.txt
    frozen: true
    deps: [d]
    outs: [fr.txt]
""",
    },
    restorable=("top", "up"),
    # fr's command changes: DVC verifies it again, recording `d` as the last run left it.
    change={
        "src.txt": "newer\n",
        "dvc.yaml": """\
stages:
  top:
    cmd: cat fr.txt > top.txt
    deps: [fr.txt]
    outs: [top.txt]
  up:
    cmd: mkdir -p d && cat src.txt > d/new.txt
    deps: [src.txt]
    outs: [d]
  fr:
    cmd: ls -a d > fr.txt
    frozen: true
    deps: [d]
    outs: [fr.txt]
""",
    },
)

# A relative: DVC dumps dvc.lock after each stage, so a stage that depends on it (from
# another dvc.yaml) hashes it with the entries of the stages before it.
DVC_LOCK_AS_A_DEP = Case(
    files={
        "in.txt": "1\n",
        "dvc.yaml": """\
stages:
  a:
    cmd: cat in.txt > a.txt
    deps: [in.txt]
    outs: [a.txt]
""",
        "sub/dvc.yaml": """\
stages:
  r:
    cmd: cat ../a.txt ../dvc.lock > r.txt
    deps: [../a.txt, ../dvc.lock]
    outs: [r.txt]
""",
    },
    restorable=("a", "sub/dvc.yaml:r"),
    change={"in.txt": "2\n"},
)

# A relative: the repository's own .gitignore as a dep, before any stage made it.
ROOT_GITIGNORE_AS_A_DEP = Case(
    files={
        "in.txt": "1\n",
        "dvc.yaml": """\
stages:
  a:
    cmd: cat in.txt > a.txt
    deps: [in.txt]
    outs: [a.txt]
""",
        "sub/dvc.yaml": """\
stages:
  r:
    cmd: cat ../a.txt ../.gitignore > r.txt
    deps: [../a.txt, ../.gitignore]
    outs: [r.txt]
""",
    },
    restorable=("a", "sub/dvc.yaml:r"),
    change={"in.txt": "2\n"},
)

CASES: dict[str, Case] = {
    "gitignore_in_a_dep_folder": GITIGNORE_IN_A_DEP_FOLDER,
    "gitignore_shared_in_a_subfolder": GITIGNORE_SHARED_IN_A_SUBFOLDER,
    "frozen_visited_first": FROZEN_VISITED_FIRST,
    "dvc_lock_as_a_dep": DVC_LOCK_AS_A_DEP,
    "root_gitignore_as_a_dep": ROOT_GITIGNORE_AS_A_DEP,
}
