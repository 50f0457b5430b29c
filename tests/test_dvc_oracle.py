"""DVC is the oracle: `dvc repro` in one copy of a project, `executor run` in another, and
everything they leave behind must match; each also restores from what the other cached.

The projects are in tests/oracle_projects.py. Each is run once per module by each tool; the
follow-up runs (on copies of those results) are phases, started as soon as the pair is done.
Several projects and phases run at once, so the module costs about its slowest chain, not
the sum of some hundred CLI calls.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.fixtures.repos import run_cli, write_tree
from tests.oracle_projects import (
    PROJECTS,
    Project,
    build,
    cache_objects,
    containers_using,
    lock_files,
    run_entries,
    stage_lines,
    workspace,
)

Proc = subprocess.CompletedProcess[str]
DVC_API = threading.Lock()  # in-process DVC, one repository at a time


@dataclass(frozen=True)
class StageView:
    address: str  # as `dvc repro` prints it from the repository root
    outs: tuple[str, ...]  # repository-relative
    hashes: tuple[str | None, ...]  # each out's md5 in dvc.lock
    frozen: bool
    always_changed: bool


def dvc_stages(root: Path) -> list[StageView]:
    """Every stage as DVC itself loads it (in-process, the same DVC as the CLI)."""
    from dvc.repo import Repo

    views = []
    with DVC_API, Repo(str(root)) as repo:
        for stage in repo.index.stages:
            dvcfile = Path(stage.path).relative_to(root).as_posix()
            address = stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"
            outs = tuple(Path(out.fs_path).relative_to(root).as_posix() for out in stage.outs)
            hashes = tuple(out.hash_info.value for out in stage.outs)
            views.append(StageView(address, outs, hashes, stage.frozen, stage.always_changed))
    return views


def cacheable(project: Project, stages: list[StageView]) -> list[StageView]:
    """Stages whose results DVC keeps in the run-cache (and that ever run)."""
    skip = {*project.uncached, *project.unrestorable}
    return [s for s in stages if s.address not in skip and not s.frozen]


@dataclass(frozen=True)
class Pair:
    """One project after `dvc repro` (copy A) and after `executor run` (copy B)."""

    project: Project
    dvc_root: Path
    dvc_run: Proc
    executor_root: Path
    executor_run: Proc


@dataclass(frozen=True)
class Rerun:
    """A follow-up run on a copy: where, the stages it is about, what it printed."""

    root: Path
    stages: list[StageView]
    result: Proc
    before: Any = None


class Oracle:
    """Runs each project once per tool, then its phases, several projects at a time."""

    projects: Mapping[str, Project] = PROJECTS  # a subclass may bring its own

    def __init__(self, base: Path, image: str, dvc_bin: str) -> None:
        self.base, self.image, self.dvc_bin = base, image, dvc_bin
        self.pool = ThreadPoolExecutor(max_workers=3)  # first runs: never wait on anything
        self.phases = ThreadPoolExecutor(max_workers=3)  # phases: wait on first runs only
        self.started: dict[str, tuple[Future[Proc], Future[Proc]]] = {}
        self.later: dict[tuple[str, str], Future[Any]] = {}

    def dvc(self, root: Path, *args: str) -> Proc:
        return run_cli([self.dvc_bin, *args], root, {"SHELL": "/bin/sh"})

    def executor(self, root: Path, *args: str) -> Proc:
        argv = [sys.executable, "-m", "executor", *args]
        return run_cli(argv, root, {"EXECUTOR_IMAGE": self.image})

    # executor runs every dvc.yaml (-P); DVC gets targets naming every dvc.yaml, as
    # `dvc repro` alone would run only ./dvc.yaml.
    def repro(self, root: Path, project: Project) -> Proc:
        return self.dvc(root, "repro", *project.dvc_targets)

    def start(self, name: str) -> None:
        if name not in self.started:
            project = self.projects[name]
            a = build(self.base / name / "dvc", project)
            b = build(self.base / name / "executor", project)
            self.started[name] = (
                self.pool.submit(self.repro, a, project),
                self.pool.submit(self.executor, b, "run", "-P"),
            )

    def pair(self, name: str) -> Pair:
        self.start(name)
        a, b = (future.result() for future in self.started[name])
        assert a.returncode == 0, f"dvc repro failed:\n{a.stdout}{a.stderr}"
        assert b.returncode == 0, f"executor run failed:\n{b.stdout}{b.stderr}"
        return Pair(
            self.projects[name], self.base / name / "dvc", a, self.base / name / "executor", b
        )

    def phase(self, phase: str, name: str) -> Future[Any]:
        """The named follow-up (see PHASES) on project `name`, started once."""
        if (phase, name) not in self.later:
            self.start(name)
            job = PHASES[phase]
            self.later[phase, name] = self.phases.submit(lambda: job(self, self.pair(name)))
        return self.later[phase, name]


def copy(src: Path, label: str) -> Path:
    """A copy beside `src`, without `.dvc/tmp` (a `dvc status` may be changing it now)."""
    dest = src.parent / label
    tmp = src / ".dvc" / "tmp"
    shutil.copytree(
        src, dest, symlinks=True, ignore=lambda d, names: ["tmp"] if Path(d) == tmp.parent else []
    )
    return dest


def remove(root: Path, rel: str) -> None:
    path = root / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# -- phases: follow-up runs on copies of a pair's results -------------------------------------
def dvc_status(oracle: Oracle, pair: Pair) -> Proc:
    return oracle.dvc(pair.executor_root, "status")


def dvc_restores(oracle: Oracle, pair: Pair) -> Rerun:
    """After `executor run`: every dvc.lock and the cached stages' outputs deleted, so that
    `dvc repro` can only find them through the run-cache keys executor wrote."""
    root = copy(pair.executor_root, "dvc-restores")
    stages = cacheable(pair.project, dvc_stages(root))
    for rel in lock_files(root):
        remove(root, rel)
    for out in (out for stage in stages for out in stage.outs):
        remove(root, out)
    return Rerun(root, stages, oracle.repro(root, pair.project))


def executor_restores(oracle: Oracle, pair: Pair) -> Rerun:
    """A fresh copy holding only the project's files and copy A's `.dvc/cache`."""
    root = build(pair.dvc_root.parent / "executor-restores", pair.project)
    shutil.copytree(pair.dvc_root / ".dvc" / "cache", root / ".dvc" / "cache")
    stages = cacheable(pair.project, dvc_stages(pair.dvc_root))
    return Rerun(root, stages, oracle.executor(root, "run", "-P"))


def executor_after_dvc(oracle: Oracle, pair: Pair) -> Rerun:
    root = copy(pair.dvc_root, "executor-after-dvc")
    before = workspace(root), run_entries(root)
    return Rerun(root, dvc_stages(root), oracle.executor(root, "run", "-P"), before)


def both_after_a_change(oracle: Oracle, pair: Pair) -> tuple[Rerun, Rerun]:
    """The project's `change` written into copies of A and B, then each tool again."""
    theirs = copy(pair.dvc_root, "dvc-changed")
    ours = copy(pair.executor_root, "executor-changed")
    for root in (theirs, ours):
        write_tree(root, pair.project.change)
    expected = oracle.pool.submit(oracle.repro, theirs, pair.project)
    result = oracle.executor(ours, "run", "-P")
    return Rerun(theirs, [], expected.result()), Rerun(ours, [], result)


PHASES: dict[str, Callable[[Oracle, Pair], Any]] = {
    "status": dvc_status,
    "dvc_restores": dvc_restores,
    "executor_restores": executor_restores,
    "nothing_changed": executor_after_dvc,
    "change": both_after_a_change,
}
PHASE_OF_TEST = {
    "test_dvc_status_is_clean_after_executor_run": "status",
    "test_dvc_restores_what_executor_ran_from_the_run_cache": "dvc_restores",
    "test_executor_restores_what_dvc_ran_from_a_shared_cache": "executor_restores",
    "test_executor_after_dvc_repro_finds_nothing_changed": "nothing_changed",
    "test_second_run_after_a_change_stays_identical": "change",
}


@pytest.fixture(scope="module")
def oracle(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    busybox_image: str,
    dvc_bin: str,
    docker_client: Any,
) -> Iterator[Oracle]:
    """The module's runs, all started at once for the tests selected in this session."""
    found = Oracle(tmp_path_factory.mktemp("oracle"), busybox_image, dvc_bin)
    items = [i for i in request.session.items if i.module is request.module]
    chosen = [(i.originalname, i.callspec.params["project"]) for i in items if _has_project(i)]
    for _, name in chosen:
        found.start(name)
    for test, name in chosen:
        if test in PHASE_OF_TEST:
            found.phase(PHASE_OF_TEST[test], name)
    yield found
    found.phases.shutdown(wait=True)
    found.pool.shutdown(wait=True)
    assert containers_using(docker_client, found.base) == []


def _has_project(item: Any) -> bool:
    return hasattr(item, "callspec") and "project" in item.callspec.params


# -- copy A (dvc repro) against copy B (executor run) ----------------------------------------
def projects(known: dict[str, str] | None = None) -> list[Any]:
    """Every project as a parameter; a known difference (project -> reason, reported with a
    reproduction) is a strict xfail, so the test flips when it is fixed."""
    known = known or {}
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=known[name]))
        if name in known
        else name
        for name in PROJECTS
    ]


def is_lock_or_ignore(rel: str) -> bool:
    return Path(rel).name in ("dvc.lock", ".gitignore")


@pytest.mark.parametrize("project", projects())
def test_lock_files_are_byte_identical(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    expected = lock_files(pair.dvc_root)
    assert expected, "dvc wrote no dvc.lock"
    assert lock_files(pair.executor_root) == expected


@pytest.mark.parametrize("project", projects())
def test_outputs_are_identical_with_exec_bits(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours = {k: v for k, v in workspace(pair.executor_root).items() if not is_lock_or_ignore(k)}
    theirs = {k: v for k, v in workspace(pair.dvc_root).items() if not is_lock_or_ignore(k)}
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


@pytest.mark.parametrize("project", projects())
def test_gitignore_files_are_identical(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours = {k: v for k, v in workspace(pair.executor_root).items() if k.endswith(".gitignore")}
    theirs = {k: v for k, v in workspace(pair.dvc_root).items() if k.endswith(".gitignore")}
    assert ours == theirs


@pytest.mark.parametrize("project", projects())
def test_cache_holds_the_same_objects(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours, theirs = cache_objects(pair.executor_root), cache_objects(pair.dvc_root)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs  # bytes, and read-only modes


@pytest.mark.parametrize("project", projects())
def test_run_cache_entries_have_the_same_paths_and_bytes(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours, theirs = run_entries(pair.executor_root), run_entries(pair.dvc_root)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


@pytest.mark.parametrize("project", projects())
def test_dvc_status_is_clean_after_executor_run(oracle: Oracle, project: str) -> None:
    status = oracle.phase("status", project).result()
    assert status.returncode == 0, status.stderr
    always = PROJECTS[project].always_changed
    expected = "".join(f"{name}:\n\talways changed\n" for name in always).strip()
    assert status.stdout.strip() == (expected or "Data and pipelines are up to date.")


@pytest.mark.parametrize("project", [name for name, p in PROJECTS.items() if p.change])
def test_second_run_after_a_change_stays_identical(oracle: Oracle, project: str) -> None:
    """The same change in both copies: the same stages run or hit the run-cache, and the
    updated dvc.lock files (entries replaced in place) and outputs stay identical."""
    theirs, ours = oracle.phase("change", project).result()
    assert theirs.result.returncode == 0, theirs.result.stdout + theirs.result.stderr
    assert ours.result.returncode == 0, ours.result.stdout + ours.result.stderr
    for marker in ("ran", "cached"):
        assert stage_lines(ours.result.stdout, marker) == stage_lines(theirs.result.stdout, marker)
    assert lock_files(ours.root) == lock_files(theirs.root)
    assert workspace(ours.root) == workspace(theirs.root)
    assert run_entries(ours.root) == run_entries(theirs.root)
    assert cache_objects(ours.root) == cache_objects(theirs.root)


# -- cross-hits ------------------------------------------------------------------------------
def lock_entries(root: Path, stages: list[StageView]) -> dict[str, Any]:
    """The stages' dvc.lock entries (over every dvc.lock), by address."""
    entries: dict[str, Any] = {}
    for rel, text in lock_files(root).items():
        prefix = "" if rel == "dvc.lock" else rel[: -len("lock")] + "yaml:"
        for name, entry in (YAML(typ="safe").load(text) or {}).get("stages", {}).items():
            entries[prefix + name] = entry
    return {stage.address: entries.get(stage.address) for stage in stages}


def outputs_of(stages: list[StageView], tree: dict[str, Any]) -> dict[str, Any]:
    """The part of a workspace() listing that lies in the stages' outputs, without the
    folders inside output directories (a restore recreates only those holding files)."""
    outs = [out for stage in stages for out in stage.outs]
    return {
        rel: node
        for rel, node in tree.items()
        if rel in outs or (node[0] != "dir" and any(rel.startswith(o + "/") for o in outs))
    }


def restored_view(stages: list[StageView], source: Path, cache: Path) -> dict[str, Any]:
    """What restoring the stages' outputs from `cache` must bring back of the run in
    `source`: a file's content (symlinks followed) and exec bit (both are in the lock), a
    directory's files as its `.dir` object lists them: without .dvcignore'd files and
    without exec bits."""
    view: dict[str, Any] = {}
    for stage in stages:
        for out, md5 in zip(stage.outs, stage.hashes, strict=True):
            path = source / out
            if md5 is None or not md5.endswith(".dir"):
                view[out] = ("file", path.read_bytes(), bool(path.stat().st_mode & 0o100))
                continue
            view[out] = ("dir", b"", False)
            listing = json.loads((cache / "files" / "md5" / md5[:2] / md5[2:]).read_bytes())
            for item in listing:
                view[f"{out}/{item['relpath']}"] = (
                    "file",
                    (path / item["relpath"]).read_bytes(),
                    False,
                )
    return view


def assert_restored_without_running(rerun: Rerun, source: Path) -> None:
    """Every stage restored from the run-cache, as the run in `source` left it."""
    result = rerun.result
    assert rerun.stages, "no cacheable stage: nothing to check"
    assert result.returncode == 0, result.stdout + result.stderr
    assert stage_lines(result.stdout, "ran").isdisjoint(s.address for s in rerun.stages)
    assert stage_lines(result.stdout, "cached") >= {s.address for s in rerun.stages}
    expected = restored_view(rerun.stages, source, rerun.root / ".dvc" / "cache")
    assert outputs_of(rerun.stages, workspace(rerun.root)) == expected
    assert lock_entries(rerun.root, rerun.stages) == lock_entries(source, rerun.stages)


@pytest.mark.parametrize("project", projects())
def test_dvc_restores_what_executor_ran_from_the_run_cache(oracle: Oracle, project: str) -> None:
    rerun = oracle.phase("dvc_restores", project).result()
    assert_restored_without_running(rerun, oracle.pair(project).executor_root)


@pytest.mark.parametrize("project", projects())
def test_executor_restores_what_dvc_ran_from_a_shared_cache(oracle: Oracle, project: str) -> None:
    rerun = oracle.phase("executor_restores", project).result()
    assert_restored_without_running(rerun, oracle.pair(project).dvc_root)


@pytest.mark.parametrize("project", projects())
def test_executor_after_dvc_repro_finds_nothing_changed(oracle: Oracle, project: str) -> None:
    rerun = oracle.phase("nothing_changed", project).result()
    result = rerun.result
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in rerun.stages:
        if stage.always_changed:
            assert f"Running stage '{stage.address}'" in result.stdout
        else:
            assert f"Stage '{stage.address}' didn't change, skipping" in result.stdout
    assert stage_lines(result.stdout, "ran") == set(PROJECTS[project].always_changed)
    assert (workspace(rerun.root), run_entries(rerun.root)) == rerun.before
