"""DVC is the oracle for what it writes between stages and when it visits each stage (issue
16, differences 1 and 5 and their relatives): fresh runs, restores after deleting the outputs,
re-runs after a change, cross-hits both ways and `executor submit` must leave byte-identical
dvc.lock files and workspaces (.gitignore files included). Projects: oracle_projects_fidelity.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet, submit
from tests.fixtures.repos import run_cli, write_tree
from tests.oracle_projects import Project, build, containers_using, lock_files, stage_lines
from tests.oracle_projects import workspace as tree
from tests.oracle_projects_fidelity import CASES

Proc = Any


@dataclass(frozen=True)
class Pair:
    dvc: Path
    ours: Path


class Oracle:
    def __init__(self, base: Path, image: str, dvc_bin: str) -> None:
        self.base, self.image, self.dvc_bin = base, image, dvc_bin
        self.pairs: dict[str, Pair] = {}

    def dvc(self, root: Path, *args: str) -> Proc:
        return run_cli([self.dvc_bin, *args], root, {"SHELL": "/bin/sh"})

    def executor(self, root: Path, *args: str) -> Proc:
        return run_cli(
            [sys.executable, "-m", "executor", *args], root, {"EXECUTOR_IMAGE": self.image}
        )

    def build(self, name: str, label: str) -> Path:
        return build(self.base / name / label, Project(files=CASES[name].files))

    def fresh(self, name: str) -> Pair:
        if name not in self.pairs:
            a, b = self.build(name, "dvc"), self.build(name, "ours")
            ok(self.dvc(a, "repro", "-P"))
            ok(self.executor(b, "run", "-P"))
            self.pairs[name] = Pair(a, b)
        return self.pairs[name]


def ok(proc: Proc) -> Proc:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def copy(src: Path, label: str) -> Path:
    dest = src.parent / label
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return dest


def same(a: Path, b: Path) -> None:
    """dvc.lock files byte for byte, then every file, .gitignore files included."""
    assert lock_files(b) == lock_files(a)
    assert tree(b) == tree(a)


@pytest.fixture(scope="module")
def oracle(
    tmp_path_factory: pytest.TempPathFactory, busybox_image: str, dvc_bin: str, docker_client: Any
) -> Iterator[Oracle]:
    found = Oracle(tmp_path_factory.mktemp("fidelity"), busybox_image, dvc_bin)
    yield found
    assert containers_using(docker_client, found.base) == []


NAMES = list(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_run_matches_dvc_repro(oracle: Oracle, name: str) -> None:
    pair = oracle.fresh(name)
    same(pair.dvc, pair.ours)


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_run_with_parallel_stages_matches_dvc_repro(oracle: Oracle, name: str) -> None:
    """With -j, stages finish in any order: what each dep sees is still DVC's."""
    pair = oracle.fresh(name)
    root = oracle.build(name, "ours-parallel")
    ok(oracle.executor(root, "run", "-P", "-j", "4"))
    same(pair.dvc, root)


def _outputs(root: Path) -> list[str]:
    """The outputs of every stage that is not frozen, as DVC loads them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            Path(out.fs_path).relative_to(root).as_posix()
            for stage in repo.index.stages
            if not stage.frozen
            for out in stage.outs
        ]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_after_deleting_the_outputs_restores_what_dvc_restores(
    oracle: Oracle, name: str
) -> None:
    pair = oracle.fresh(name)
    theirs, ours = copy(pair.dvc, "dvc-deleted"), copy(pair.ours, "ours-deleted")
    for root in (theirs, ours):
        for rel in _outputs(root):
            path = root / rel
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    ok(oracle.dvc(theirs, "repro", "-P"))
    done = ok(oracle.executor(ours, "run", "-P"))
    assert stage_lines(done.stdout, "ran").isdisjoint(CASES[name].restorable), done.stdout
    same(theirs, ours)


@pytest.mark.parametrize("name", NAMES)
def test_each_tool_restores_from_the_others_run_cache(oracle: Oracle, name: str) -> None:
    pair, case = oracle.fresh(name), CASES[name]
    for source, label in ((pair.dvc, "ours-from-dvc"), (pair.ours, "dvc-from-ours")):
        root = oracle.build(name, label)
        shutil.copytree(source / ".dvc" / "cache", root / ".dvc" / "cache")
        if label == "ours-from-dvc":
            done = ok(oracle.executor(root, "run", "-P"))
        else:
            done = ok(oracle.dvc(root, "repro", "-P"))
        assert stage_lines(done.stdout, "ran").isdisjoint(case.restorable), done.stdout
        same(source, root)


@pytest.mark.parametrize("name", NAMES)
def test_a_run_after_a_change_matches_dvc_repro(oracle: Oracle, name: str) -> None:
    pair = oracle.fresh(name)
    theirs, ours = copy(pair.dvc, "dvc-changed"), copy(pair.ours, "ours-changed")
    for root in (theirs, ours):
        write_tree(root, CASES[name].change)
    ok(oracle.dvc(theirs, "repro", "-P"))
    ok(oracle.executor(ours, "run", "-P"))
    same(theirs, ours)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].fleet])
def test_submit_matches_dvc_repro(
    oracle: Oracle,
    fleet: Fleet,
    busybox_image: str,
    name: str,
) -> None:
    pair = oracle.fresh(name)
    root = oracle.build(name, "submitted")
    done = submit(root, fleet, busybox_image, "-P")
    assert done.returncode == 0, done.stdout + done.stderr + fleet.worker_log()
    same(pair.dvc, root)
