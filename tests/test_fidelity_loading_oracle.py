"""DVC is the oracle for loading and walking (issue 16, differences 2, 3, 4 and relatives):
the projects of tests/oracle_projects_loading.py through the same runs and phases as
tests/test_dvc_oracle.py: byte-identical dvc.lock files, workspaces, caches and run-cache
entries on a fresh run, restores from each other's caches, and re-runs after a change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.oracle_projects import (
    cache_objects,
    containers_using,
    lock_files,
    run_entries,
    stage_lines,
    workspace,
)
from tests.oracle_projects_loading import PROJECTS
from tests.test_dvc_oracle import (
    Oracle,
    assert_restored_without_running,
    is_lock_or_ignore,
)


class LoadingOracle(Oracle):
    """The oracle of tests/test_dvc_oracle.py over this module's projects."""

    projects = PROJECTS


@pytest.fixture(scope="module")
def oracle(
    tmp_path_factory: pytest.TempPathFactory,
    busybox_image: str,
    dvc_bin: str,
    docker_client: Any,
) -> Iterator[LoadingOracle]:
    found = LoadingOracle(tmp_path_factory.mktemp("oracle-loading"), busybox_image, dvc_bin)
    for name in PROJECTS:
        found.start(name)
        for phase in ("dvc_restores", "executor_restores", "nothing_changed", "change"):
            found.phase(phase, name)
    yield found
    found.phases.shutdown(wait=True)
    found.pool.shutdown(wait=True)
    assert containers_using(docker_client, found.base) == []


NAMES = list(PROJECTS)


@pytest.mark.parametrize("project", NAMES)
def test_lock_files_are_byte_identical(oracle: LoadingOracle, project: str) -> None:
    pair = oracle.pair(project)
    expected = lock_files(pair.dvc_root)
    assert expected, "dvc wrote no dvc.lock"
    assert lock_files(pair.executor_root) == expected


@pytest.mark.parametrize("project", NAMES)
def test_workspaces_caches_and_run_entries_are_identical(
    oracle: LoadingOracle, project: str
) -> None:
    pair = oracle.pair(project)
    assert stage_lines(pair.executor_run.stdout, "ran") == stage_lines(pair.dvc_run.stdout, "ran")
    ours = {k: v for k, v in workspace(pair.executor_root).items() if not is_lock_or_ignore(k)}
    theirs = {k: v for k, v in workspace(pair.dvc_root).items() if not is_lock_or_ignore(k)}
    assert ours == theirs
    gitignores = [
        {k: v for k, v in workspace(root).items() if k.endswith(".gitignore")}
        for root in (pair.executor_root, pair.dvc_root)
    ]
    assert gitignores[0] == gitignores[1]
    assert cache_objects(pair.executor_root) == cache_objects(pair.dvc_root)
    assert run_entries(pair.executor_root) == run_entries(pair.dvc_root)


@pytest.mark.parametrize("project", NAMES)
def test_dvc_restores_what_executor_ran(oracle: LoadingOracle, project: str) -> None:
    rerun = oracle.phase("dvc_restores", project).result()
    assert_restored_without_running(rerun, oracle.pair(project).executor_root)


@pytest.mark.parametrize("project", NAMES)
def test_executor_restores_what_dvc_ran(oracle: LoadingOracle, project: str) -> None:
    rerun = oracle.phase("executor_restores", project).result()
    assert_restored_without_running(rerun, oracle.pair(project).dvc_root)


@pytest.mark.parametrize("project", NAMES)
def test_executor_after_dvc_finds_nothing_changed(oracle: LoadingOracle, project: str) -> None:
    rerun = oracle.phase("nothing_changed", project).result()
    result = rerun.result
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s.address for s in rerun.stages}, "DVC collected no stage"
    assert stage_lines(result.stdout, "ran") == set()
    assert (workspace(rerun.root), run_entries(rerun.root)) == rerun.before


@pytest.mark.parametrize("project", NAMES)
def test_a_change_reruns_the_same_stages_with_the_same_results(
    oracle: LoadingOracle, project: str
) -> None:
    theirs, ours = oracle.phase("change", project).result()
    assert theirs.result.returncode == 0, theirs.result.stdout + theirs.result.stderr
    assert ours.result.returncode == 0, ours.result.stdout + ours.result.stderr
    assert stage_lines(theirs.result.stdout, "ran"), "the change ran nothing"
    for marker in ("ran", "cached"):
        assert stage_lines(ours.result.stdout, marker) == stage_lines(theirs.result.stdout, marker)
    assert lock_files(ours.root) == lock_files(theirs.root)
    assert workspace(ours.root) == workspace(theirs.root)
    assert run_entries(ours.root) == run_entries(theirs.root)
    assert cache_objects(ours.root) == cache_objects(theirs.root)


def test_the_subrepo_is_left_alone(oracle: LoadingOracle) -> None:
    """Neither tool ran the subrepo's stage (it would overwrite model.txt) or hashed its
    files into the parent's `data` dep."""
    pair = oracle.pair("subrepos")
    for root in (pair.dvc_root, pair.executor_root):
        assert "data/a.txt" in (root / "model.txt").read_text()
        assert not (root / "sub" / "dvc.lock").exists()
    assert "nfiles: 2" in (pair.executor_root / "dvc.lock").read_text()


def test_locked_keys_keep_their_types(oracle: LoadingOracle) -> None:
    text = (oracle.pair("params_scalar_keys").executor_root / "dvc.lock").read_text()
    assert "          -2:\n" in text and "'-2'" not in text.split("p.json")[0]
    assert (
        "dataset_kwargs.moons*:"
        in (oracle.pair("params_globs").executor_root / "dvc.lock").read_text()
    )
