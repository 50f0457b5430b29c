"""DVC is the oracle: `dvc repro` in one copy of a project, `executor run` in another, and
everything they leave behind must match; each also restores from what the other cached.

The projects are in tests/oracle_projects.py. Each is run once per module by each tool (in
parallel, across projects); the cross-hit tests then work on copies of those two results.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.fixtures.repos import run_cli, write_tree
from tests.oracle_projects import (
    CHAIN_AND_BRANCH,
    PROJECTS,
    Project,
    build,
    cache_objects,
    containers_using,
    lock_files,
    run_entries,
    workspace,
)

Proc = subprocess.CompletedProcess[str]
SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "dvc-vectors"


@dataclass(frozen=True)
class Pair:
    """One project after `dvc repro` (copy A) and after `executor run` (copy B)."""

    project: Project
    dvc_root: Path
    dvc_run: Proc
    executor_root: Path
    executor_run: Proc


class Oracle:
    """Builds and runs each project once per module, several projects at a time."""

    def __init__(self, base: Path, image: str, dvc_bin: str) -> None:
        self.base, self.image, self.dvc_bin = base, image, dvc_bin
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.started: dict[str, tuple[Future[Proc], Future[Proc]]] = {}

    def dvc(self, root: Path, *args: str) -> Proc:
        return run_cli([self.dvc_bin, *args], root, {"SHELL": "/bin/sh"})

    def executor(self, root: Path, *args: str) -> Proc:
        return run_cli(
            [sys.executable, "-m", "executor", *args], root, {"EXECUTOR_IMAGE": self.image}
        )

    def repro(self, root: Path, project: Project) -> Proc:
        return self.dvc(root, "repro", *project.dvc_targets)

    def start(self, name: str) -> None:
        if name in self.started:
            return
        project = PROJECTS[name]
        a = build(self.base / name / "dvc", project)
        b = build(self.base / name / "executor", project)
        self.started[name] = (
            self.pool.submit(self.repro, a, project),
            self.pool.submit(self.executor, b, "run"),
        )

    def pair(self, name: str) -> Pair:
        self.start(name)
        a, b = self.started[name]
        pair = Pair(
            PROJECTS[name],
            self.base / name / "dvc",
            a.result(),
            self.base / name / "executor",
            b.result(),
        )
        assert pair.dvc_run.returncode == 0, (
            f"dvc repro failed:\n{pair.dvc_run.stdout}{pair.dvc_run.stderr}"
        )
        assert pair.executor_run.returncode == 0, (
            f"executor run failed:\n{pair.executor_run.stdout}{pair.executor_run.stderr}"
        )
        return pair

    def copy(self, src: Path, label: str) -> Path:
        dest = src.parent / label
        shutil.copytree(src, dest, symlinks=True)
        return dest


@pytest.fixture(scope="module")
def oracle(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    busybox_image: str,
    dvc_bin: str,
    docker_client: Any,
) -> Iterator[Oracle]:
    found = Oracle(tmp_path_factory.mktemp("oracle"), busybox_image, dvc_bin)
    wanted = {
        item.callspec.params["project"]
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and "project" in item.callspec.params
    }
    for name in sorted(wanted):
        found.start(name)
    yield found
    found.pool.shutdown(wait=True)
    assert containers_using(docker_client, found.base) == []


@pytest.fixture(autouse=True)
def no_containers_left(
    no_leftover_containers: None, docker_client: Any, tmp_path: Path
) -> Iterator[None]:
    yield
    assert containers_using(docker_client, tmp_path) == []


# -- what DVC says about the project's stages ------------------------------------------------
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
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            dvcfile = Path(stage.path).relative_to(root).as_posix()
            address = stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"
            outs = tuple(Path(out.fs_path).relative_to(root).as_posix() for out in stage.outs)
            hashes = tuple(out.hash_info.value for out in stage.outs)
            views.append(StageView(address, outs, hashes, stage.frozen, stage.always_changed))
    return views


def cacheable(project: Project, stages: list[StageView]) -> list[StageView]:
    """Stages whose results DVC keeps in the run-cache (and that ever run)."""
    return [s for s in stages if s.address not in project.uncached and not s.frozen]


def lock_entries(root: Path) -> dict[str, Any]:
    """Stage address -> its dvc.lock entry, over every dvc.lock."""
    entries: dict[str, Any] = {}
    for rel, text in lock_files(root).items():
        prefix = "" if rel == "dvc.lock" else rel[: -len("lock")] + "yaml:"
        for name, entry in (YAML(typ="safe").load(text) or {}).get("stages", {}).items():
            entries[prefix + name] = entry
    return entries


def outputs_of(stages: list[StageView], tree: dict[str, Any]) -> dict[str, Any]:
    """The part of a workspace() listing that lies in the stages' outputs, without the
    folders inside output directories (a restore recreates only those holding files)."""
    outs = [out for stage in stages for out in stage.outs]
    return {
        rel: node
        for rel, node in tree.items()
        if rel in outs or (node[0] != "dir" and any(rel.startswith(o + "/") for o in outs))
    }


def restored_view(stages: list[StageView], tree: dict[str, Any], cache: Path) -> dict[str, Any]:
    """What restoring the stages' outputs from `cache` must bring back of the run's `tree`:
    a file as it was (its exec bit is in the lock), a directory's files as its `.dir` object
    lists them: neither .dvcignore'd files nor exec bits are in it (spec §3.2)."""
    view: dict[str, Any] = {}
    for stage in stages:
        for out, md5 in zip(stage.outs, stage.hashes, strict=True):
            view[out] = tree[out]
            if md5 is None or not md5.endswith(".dir"):
                continue
            listing = json.loads((cache / "files" / "md5" / md5[:2] / md5[2:]).read_bytes())
            for item in listing:
                rel = f"{out}/{item['relpath']}"
                view[rel] = ("file", tree[rel][1], False)
    return view


def remove(root: Path, rel: str) -> None:
    path = root / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def is_output_or_lock(rel: str) -> bool:
    return Path(rel).name in ("dvc.lock", ".gitignore")


# -- copy A (dvc repro) against copy B (executor run) ----------------------------------------
@pytest.mark.parametrize("project", list(PROJECTS))
def test_lock_files_are_byte_identical(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    expected = lock_files(pair.dvc_root)
    assert expected, "dvc wrote no dvc.lock"
    assert lock_files(pair.executor_root) == expected


@pytest.mark.parametrize("project", list(PROJECTS))
def test_outputs_are_identical_with_exec_bits(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours = {k: v for k, v in workspace(pair.executor_root).items() if not is_output_or_lock(k)}
    theirs = {k: v for k, v in workspace(pair.dvc_root).items() if not is_output_or_lock(k)}
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


@pytest.mark.parametrize("project", list(PROJECTS))
def test_gitignore_files_are_identical(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours = {k: v for k, v in workspace(pair.executor_root).items() if k.endswith(".gitignore")}
    theirs = {k: v for k, v in workspace(pair.dvc_root).items() if k.endswith(".gitignore")}
    assert ours == theirs


@pytest.mark.parametrize("project", list(PROJECTS))
def test_cache_holds_the_same_objects(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours, theirs = cache_objects(pair.executor_root), cache_objects(pair.dvc_root)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs  # bytes, and read-only modes


@pytest.mark.parametrize("project", list(PROJECTS))
def test_run_cache_entries_have_the_same_paths_and_bytes(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    ours, theirs = run_entries(pair.executor_root), run_entries(pair.dvc_root)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


@pytest.mark.parametrize("project", list(PROJECTS))
def test_dvc_status_is_clean_after_executor_run(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    status = oracle.dvc(pair.executor_root, "status")
    assert status.returncode == 0, status.stderr
    expected = "".join(f"{name}:\n\talways changed\n" for name in pair.project.always_changed)
    assert status.stdout.strip() == (expected.strip() or "Data and pipelines are up to date.")


def stage_lines(output: str, marker: str) -> set[str]:
    """Addresses of the stages whose `Running stage` / `is cached` line is in the output."""
    head, tail = {"ran": ("Running stage '", "':"), "cached": ("Stage '", "' is cached")}[marker]
    return {
        line[len(head) : line.index(tail)]
        for line in output.splitlines()
        if line.startswith(head) and tail in line
    }


@pytest.mark.parametrize("project", [name for name, p in PROJECTS.items() if p.change])
def test_second_run_after_a_change_stays_identical(oracle: Oracle, project: str) -> None:
    """The same change in both copies: the same stages run or hit the run-cache, and the
    updated dvc.lock files (entries replaced in place) and outputs stay identical."""
    pair = oracle.pair(project)
    theirs = oracle.copy(pair.dvc_root, "dvc-changed")
    ours = oracle.copy(pair.executor_root, "executor-changed")
    for root in (theirs, ours):
        write_tree(root, pair.project.change)
    dvc_run = oracle.pool.submit(oracle.repro, theirs, pair.project)
    result = oracle.executor(ours, "run")
    expected = dvc_run.result()
    assert expected.returncode == 0, expected.stdout + expected.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert stage_lines(result.stdout, "ran") == stage_lines(expected.stdout, "ran")
    assert stage_lines(result.stdout, "cached") == stage_lines(expected.stdout, "cached")
    assert lock_files(ours) == lock_files(theirs)
    assert workspace(ours) == workspace(theirs)
    assert run_entries(ours) == run_entries(theirs)
    assert cache_objects(ours) == cache_objects(theirs)


def run_in_sub(oracle: Oracle, base: Path) -> tuple[Path, Proc, Path, Proc]:
    """several_dvcyaml run with target `use` from `sub/` by DVC and by executor."""
    theirs = build(base / "dvc", PROJECTS["several_dvcyaml"])
    ours = build(base / "executor", PROJECTS["several_dvcyaml"])
    dvc_run = oracle.pool.submit(oracle.dvc, theirs / "sub", "repro", "use")
    result = oracle.executor(ours / "sub", "run", "use")
    assert dvc_run.result().returncode == 0, dvc_run.result().stdout + dvc_run.result().stderr
    assert result.returncode == 0, result.stdout + result.stderr
    return theirs, dvc_run.result(), ours, result


def test_targets_are_resolved_from_the_current_directory(oracle: Oracle, tmp_path: Path) -> None:
    """In `sub/`, `use` names sub/dvc.yaml's stage (DVC_STAGE of its upstream is then
    `../dvc.yaml:prep`, which the stage writes into its output)."""
    theirs, _, ours, _ = run_in_sub(oracle, tmp_path)
    assert lock_files(ours) == lock_files(theirs)
    assert workspace(ours) == workspace(theirs)


@pytest.mark.xfail(strict=True, reason="stage addresses are printed from the root, not the cwd")
def test_stage_addresses_are_printed_from_the_current_directory(
    oracle: Oracle, tmp_path: Path
) -> None:
    _, expected, _, result = run_in_sub(oracle, tmp_path)
    assert stage_lines(expected.stdout, "ran") == {"../dvc.yaml:prep", "use"}
    assert stage_lines(result.stdout, "ran") == stage_lines(expected.stdout, "ran")


# -- cross-hits ------------------------------------------------------------------------------
@pytest.mark.parametrize("project", list(PROJECTS))
def test_dvc_restores_what_executor_ran_from_the_run_cache(oracle: Oracle, project: str) -> None:
    """After `executor run`: delete every dvc.lock and the cached stages' outputs, so that
    `dvc repro` can only find them through the run-cache keys executor wrote."""
    pair = oracle.pair(project)
    root = oracle.copy(pair.executor_root, "dvc-restores")
    stages = cacheable(pair.project, dvc_stages(root))
    for rel in lock_files(root):
        remove(root, rel)
    for out in (out for stage in stages for out in stage.outs):
        remove(root, out)

    result = oracle.repro(root, pair.project)
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in stages:
        assert f"Running stage '{stage.address}'" not in result.stdout
        assert f"Stage '{stage.address}' is cached - skipping run" in result.stdout
    expected = restored_view(stages, workspace(pair.executor_root), root / ".dvc" / "cache")
    assert outputs_of(stages, workspace(root)) == expected
    ours = lock_entries(pair.executor_root)
    assert {s.address: lock_entries(root)[s.address] for s in stages} == {
        s.address: ours[s.address] for s in stages
    }


@pytest.mark.parametrize("project", list(PROJECTS))
def test_executor_restores_what_dvc_ran_from_a_shared_cache(oracle: Oracle, project: str) -> None:
    """A fresh copy holding only the project's files and copy A's `.dvc/cache`."""
    pair = oracle.pair(project)
    root = build(pair.dvc_root.parent / "executor-restores", pair.project)
    shutil.copytree(pair.dvc_root / ".dvc" / "cache", root / ".dvc" / "cache")
    stages = cacheable(pair.project, dvc_stages(pair.dvc_root))

    result = oracle.executor(root, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in stages:
        assert f"Running stage '{stage.address}'" not in result.stdout
        assert f"Stage '{stage.address}' is cached - skipping run" in result.stdout
    expected = restored_view(stages, workspace(pair.dvc_root), root / ".dvc" / "cache")
    assert outputs_of(stages, workspace(root)) == expected
    theirs = lock_entries(pair.dvc_root)
    assert {s.address: lock_entries(root)[s.address] for s in stages} == {
        s.address: theirs[s.address] for s in stages
    }


@pytest.mark.xfail(strict=True, reason="executor always uses <root>/.dvc/cache, ignoring cache.dir")
def test_executor_honours_a_cache_dir_set_in_dvc_config(oracle: Oracle) -> None:
    """`cache.dir` pointing at copy A's cache: DVC restores every stage from it, and so
    must executor (otherwise the two stop sharing a cache the user configured)."""
    pair = oracle.pair("stage_order")
    config = f"[cache]\n    dir = {pair.dvc_root / '.dvc' / 'cache'}\n"
    roots = [build(pair.dvc_root.parent / f"cache-dir-{tool}", pair.project) for tool in "CD"]
    for root in roots:
        with open(root / ".dvc" / "config", "a") as f:
            f.write(config)
    dvc_run = oracle.pool.submit(oracle.repro, roots[1], pair.project)
    result = oracle.executor(roots[0], "run")
    assert dvc_run.result().returncode == 0
    assert stage_lines(dvc_run.result().stdout, "ran") == set()
    assert result.returncode == 0, result.stdout + result.stderr
    assert stage_lines(result.stdout, "ran") == set()
    assert not (roots[0] / ".dvc" / "cache").exists()


@pytest.mark.parametrize("project", list(PROJECTS))
def test_executor_after_dvc_repro_finds_nothing_changed(oracle: Oracle, project: str) -> None:
    pair = oracle.pair(project)
    root = oracle.copy(pair.dvc_root, "executor-after-dvc")
    before = workspace(root), run_entries(root)

    result = oracle.executor(root, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    for stage in dvc_stages(root):
        if stage.always_changed:
            assert f"Running stage '{stage.address}'" in result.stdout
        else:
            assert f"Stage '{stage.address}' didn't change, skipping" in result.stdout
    assert result.stdout.count("Running stage '") == len(pair.project.always_changed)
    assert (workspace(root), run_entries(root)) == before


def test_parallel_jobs_write_dvc_lock_in_dvc_order(oracle: Oracle, tmp_path: Path) -> None:
    """x -> y -> a is a chain and b is independent: DVC records x, y, a, b; with two jobs
    b finishes while y and a still wait, yet dvc.lock must not depend on timing."""
    dvc_root = build(tmp_path / "dvc", CHAIN_AND_BRANCH)
    ours = build(tmp_path / "executor", CHAIN_AND_BRANCH)
    assert oracle.repro(dvc_root, CHAIN_AND_BRANCH).returncode == 0
    result = oracle.executor(ours, "run", "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lock_files(ours) == lock_files(dvc_root)


@pytest.mark.xfail(
    strict=True, reason="--allow-missing still runs stages whose outs are not in cache"
)
def test_allow_missing_skips_outputs_not_in_the_cache(oracle: Oracle, tmp_path: Path) -> None:
    """After `--no-commit`, every output is "not in cache"; `--allow-missing` accepts that
    (DVC's Stage.changed_outs), so nothing runs."""
    theirs = build(tmp_path / "dvc", CHAIN_AND_BRANCH)
    ours = build(tmp_path / "executor", CHAIN_AND_BRANCH)
    first = oracle.pool.submit(oracle.dvc, theirs, "repro", "--no-commit")
    assert oracle.executor(ours, "run", "--no-commit").returncode == 0
    assert first.result().returncode == 0
    second = oracle.pool.submit(oracle.dvc, theirs, "repro", "--allow-missing")
    result = oracle.executor(ours, "run", "--allow-missing")
    expected = second.result()
    assert stage_lines(expected.stdout, "ran") == set()
    assert result.returncode == 0, result.stdout + result.stderr
    assert stage_lines(result.stdout, "ran") == set()
    assert lock_files(ours) == lock_files(theirs)


# -- the shared vectors ----------------------------------------------------------------------
def test_vectors_fixture_lock_is_rebuilt_from_its_run_cache(oracle: Oracle, tmp_path: Path) -> None:
    """The DVC-built fixture without its dvc.lock and outputs: executor restores all three
    stages from the fixture's run-cache and writes DVC's dvc.lock byte for byte."""
    root = tmp_path / "fixture"
    shutil.copytree(SPEC / "fixture", root, symlinks=True)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    for ignore in root.rglob("_gitignore"):
        ignore.rename(ignore.with_name(".gitignore"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    expected_lock = (root / "dvc.lock").read_bytes()
    expected_outs = workspace(root / "out")
    expected_runs = run_entries(root)
    (root / "dvc.lock").unlink()
    shutil.rmtree(root / "out")

    result = oracle.executor(root, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Running stage" not in result.stdout
    for stage in ("upper", "listing", "combine"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in result.stdout
    assert (root / "dvc.lock").read_bytes() == expected_lock
    assert workspace(root / "out") == expected_outs
    assert run_entries(root) == expected_runs
    assert (root / "scripts" / "combine.sh").stat().st_mode & 0o111
