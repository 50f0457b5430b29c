"""Runner-level bad input (issue 16): each refusal is one line, exit 2, no traceback, nothing
changed and no container left; where DVC accepts the input, executor does what DVC does."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import write_tree
from tests.oracle_projects import containers_using, snapshot

Run = Callable[..., subprocess.CompletedProcess[str]]
ONE_STAGE = (
    "stages:\n  s:\n    cmd: cat in.txt > out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
)


def opened(root: Path) -> Path:
    """`.dvc/cache` and `.dvc/tmp` as any earlier command leaves them, so that a snapshot
    shows what a refused command changed, not the folders opening a repository makes."""
    for name in ("cache", "tmp"):
        (root / ".dvc" / name).mkdir(exist_ok=True)
    return root


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with one `ERROR:` line naming `words`, and nothing else on stderr."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]
    assert "Running stage" not in done.stdout


@pytest.fixture()
def no_containers_left(tmp_path: Path, docker_client: Any) -> Any:
    yield
    assert containers_using(docker_client, tmp_path) == []


def test_an_output_git_tracks_is_refused_before_its_stage_runs(
    make_repo: Callable[..., Path], executor_cli: Run, dvc_cli: Run, no_containers_left: Any
) -> None:
    files = {"dvc.yaml": ONE_STAGE, "in.txt": "new\n", "out.txt": "committed\n"}
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    for root in (ours, theirs):
        subprocess.run(["git", "-C", str(root), "add", "out.txt"], check=True)
    repro = dvc_cli(theirs, "repro")
    assert repro.returncode != 0 and "already tracked by SCM" in repro.stderr  # the oracle
    before = snapshot(opened(ours))
    refused(executor_cli(ours, "run"), "out.txt", "already tracked by git", "git rm")
    assert snapshot(ours) == before
    assert not (ours / "dvc.lock").exists() and not (ours / ".gitignore").exists()


def test_a_dir_output_with_tracked_files_inside_is_refused(
    make_repo: Callable[..., Path], executor_cli: Run
) -> None:
    dvc_yaml = (
        "stages:\n  s:\n    cmd: mkdir -p d && cp in.txt d/\n    deps: [in.txt]\n    outs: [d]\n"
    )
    root = make_repo({"dvc.yaml": dvc_yaml, "in.txt": "x\n", "d/old.txt": "old\n"})
    subprocess.run(["git", "-C", str(root), "add", "d/old.txt"], check=True)
    before = snapshot(opened(root))
    refused(executor_cli(root, "run"), "'d'", "already tracked by git")
    assert snapshot(root) == before


def test_an_untracked_output_still_runs_and_only_a_cache_false_one_may_be_tracked(
    make_repo: Callable[..., Path], executor_cli: Run
) -> None:
    dvc_yaml = (
        "stages:\n  s:\n    cmd: cat in.txt > out.txt && echo 1 > m.json\n    deps: [in.txt]\n"
        "    outs: [out.txt]\n    metrics: [{m.json: {cache: false}}]\n"
    )
    root = make_repo({"dvc.yaml": dvc_yaml, "in.txt": "x\n", "m.json": "0\n"})
    subprocess.run(["git", "-C", str(root), "add", "m.json"], check=True)  # DVC allows it
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert (root / "out.txt").read_text() == "x\n"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("size: big", "size"),
        ("size: -3.5", "size"),
        ("size: [1]", "size"),
        ("size: 2\n      isexec: 1", "isexec"),
        ("size: 2\n      files:\n      - md5: abcdef", "files"),
    ],
)
def test_a_dvc_lock_failing_dvcs_validation_is_not_trusted(
    make_repo: Callable[..., Path], executor_cli: Run, dvc_cli: Run, value: str, named: str
) -> None:
    files = {"dvc.yaml": ONE_STAGE, "in.txt": "x\n"}
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    assert executor_cli(ours, "run").returncode == 0
    assert dvc_cli(theirs, "repro").returncode == 0
    for root in (ours, theirs):
        lock = root / "dvc.lock"
        lock.write_text(lock.read_text().replace("size: 2", value))
    assert dvc_cli(theirs, "repro").returncode != 0  # DVC: "validation failed"
    before = snapshot(ours)
    refused(executor_cli(ours, "run"), "dvc.lock", "validation failed", named)
    assert snapshot(ours) == before


def test_a_dvc_lock_entry_without_cmd_is_refused(
    make_repo: Callable[..., Path], executor_cli: Run
) -> None:
    root = make_repo({"dvc.yaml": ONE_STAGE, "in.txt": "x\n"})
    assert executor_cli(root, "run").returncode == 0
    lock = root / "dvc.lock"
    lock.write_text("\n".join(ln for ln in lock.read_text().splitlines() if "cmd:" not in ln))
    before = snapshot(root)
    refused(executor_cli(root, "run"), "dvc.lock", "cmd")
    assert snapshot(root) == before


def test_a_git_repository_without_dvc_init_is_refused_as_dvc_refuses_it(
    tmp_path: Path, executor_cli: Run, dvc_cli: Run
) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    write_tree(root, {"dvc.yaml": ONE_STAGE, "in.txt": "x\n"})
    assert "not inside of a DVC repository" in dvc_cli(root, "repro").stderr  # the oracle
    refused(executor_cli(root, "run"), "not inside of a DVC repository", "dvc init")
    assert sorted(p.name for p in root.iterdir()) == [".git", "dvc.yaml", "in.txt"]


def test_a_dvc_folder_without_its_gitignore_gets_one_before_any_cache_exists(
    make_repo: Callable[..., Path], executor_cli: Run
) -> None:
    root = make_repo({"dvc.yaml": ONE_STAGE, "in.txt": "x\n"})
    (root / ".dvc" / ".gitignore").unlink()
    assert executor_cli(root, "run").returncode == 0
    assert (root / ".dvc" / ".gitignore").read_text() == "/config.local\n/tmp\n/cache\n"
    untracked = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert ".dvc/cache" not in untracked and ".dvc/tmp" not in untracked, untracked


@pytest.mark.parametrize(
    "dvc_yaml",
    ["", "stages: {}\n", "stages:\n  t:\n    matrix:\n      x: []\n    cmd: echo ${item.x}\n"],
    ids=["empty", "no-stages", "empty-matrix"],
)
def test_a_dvc_yaml_without_stages_is_up_to_date_as_with_dvc(
    make_repo: Callable[..., Path], executor_cli: Run, dvc_cli: Run, dvc_yaml: str
) -> None:
    root = make_repo({"dvc.yaml": dvc_yaml})
    repro = dvc_cli(root, "repro")
    assert repro.returncode == 0 and "Data and pipelines are up to date." in repro.stdout
    shutil.rmtree(root / ".dvc" / "tmp", ignore_errors=True)
    before = snapshot(root)
    for args in (("run",), ("run", "dvc.yaml"), ("run", "-P")):
        done = executor_cli(root, *args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Data and pipelines are up to date.", done.stdout
        assert snapshot(root) == before


def test_a_stage_named_with_a_colon_is_not_offered_as_its_own_correction(
    make_repo: Callable[..., Path], executor_cli: Run, dvc_cli: Run
) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  a:b:\n    cmd: echo hi\n"})
    assert dvc_cli(root, "repro", "a:b").returncode != 0  # DVC reads it as a file `a`
    before = snapshot(root)
    done = executor_cli(root, "run", "a:b")
    refused(done, "'a' is not a dvc.yaml", "-P")
    assert "did you mean" not in done.stderr
    assert snapshot(root) == before


def test_a_target_in_a_missing_dvc_yaml_says_so(
    make_repo: Callable[..., Path], executor_cli: Run
) -> None:
    root = make_repo({"dvc.yaml": ONE_STAGE, "in.txt": "x\n"})
    refused(executor_cli(root, "run", "sub/dvc.yaml:s"), "'sub/dvc.yaml' does not exist")


def test_a_dvc_yaml_target_in_a_nested_dvc_repository_is_refused_not_taken_as_empty(
    make_repo: Callable[..., Path], executor_cli: Run, dvc_cli: Run
) -> None:
    root = make_repo(
        {
            "dvc.yaml": ONE_STAGE,
            "in.txt": "x\n",
            "sub/.dvc/config": "",
            "sub/dvc.yaml": "stages:\n  b:\n    cmd: echo hi > b.txt\n    outs: [b.txt]\n",
        }
    )
    assert dvc_cli(root, "repro", "sub/dvc.yaml").returncode != 0  # the oracle refuses too
    before = snapshot(opened(root))
    refused(executor_cli(root, "run", "sub/dvc.yaml"), "'sub/dvc.yaml' is not part of")
    assert snapshot(root) == before
