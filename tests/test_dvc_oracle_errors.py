"""Bad input and failing commands: a one-line error, a non-zero exit, and nothing changed.

Each case starts from a repository that `executor run` has already run (so there is a
dvc.lock, outputs and a cache to keep intact), changes `in.txt` so that the good stage would
run again, and adds something broken. executor must refuse before running anything; where DVC
refuses the same input too, the test checks that as well (on another copy), so every case is
bad by the oracle's standard and not just ours.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import run_cli
from tests.oracle_projects import (
    Project,
    build,
    cache_objects,
    containers_using,
    lock_files,
    run_entries,
    snapshot,
)

Proc = subprocess.CompletedProcess[str]

FIRST = """\
stages:
  first:
    cmd: tr a-z A-Z < in.txt > first.txt
    deps:
      - in.txt
    params:
      - p.a
    outs:
      - first.txt
"""
BASE = Project(
    files={
        "in.txt": "hello\n",
        "params.yaml": "p:\n  a: 1\n",
        "dvc.yaml": FIRST
        + """\
  second:
    cmd: cat first.txt first.txt > second.txt
    deps:
      - first.txt
    outs:
      - second.txt
  third:
    cmd: cat second.txt first.txt > third.txt
    deps:
      - second.txt
    outs:
      - third.txt
""",
    }
)
OUTSIDE = "outside"  # a folder beside the repository, for paths that escape it


@dataclass(frozen=True)
class Bad:
    """A broken addition to the `first` stage's dvc.yaml, and what the error must name."""

    stages: str  # appended to FIRST
    names: tuple[str, ...]
    links: Mapping[str, str] = field(default_factory=dict)  # repo path -> target
    dvc_rejects: bool = True


BAD: dict[str, Bad] = {
    "yaml_syntax": Bad(
        "  bad:\n    cmd: [unclosed\n    outs:\n      - x.txt\n", ("dvc.yaml:12", "YAML")
    ),
    "unknown_field": Bad(
        "  bad:\n    cmd: echo x > x.txt\n    outz:\n      - x.txt\n",
        ("dvc.yaml:12", "bad", "outz"),
    ),
    "wrong_type": Bad(
        "  bad:\n    cmd: echo x > x.txt\n    outs: x.txt\n", ("dvc.yaml:12", "bad", "outs")
    ),
    "yes_is_not_a_bool": Bad(
        "  bad:\n    cmd: echo x > x.txt\n    frozen: yes\n    outs:\n      - x.txt\n",
        ("dvc.yaml:12", "bad", "frozen"),
    ),
    "undefined_variable": Bad(
        "  bad:\n    cmd: echo ${nope} > x.txt\n    outs:\n      - x.txt\n",
        ("dvc.yaml:11", "bad", "nope"),
    ),
    "missing_dependency": Bad(
        "  bad:\n    cmd: cat absent.txt > x.txt\n    deps:\n      - absent.txt\n"
        "    outs:\n      - x.txt\n",
        ("bad", "absent.txt"),
    ),
    "cycle": Bad(
        "  c1:\n    cmd: cat c2.txt > c1.txt\n    deps:\n      - c2.txt\n    outs:\n      - c1.txt\n"
        "  c2:\n    cmd: cat c1.txt > c2.txt\n    deps:\n      - c1.txt\n    outs:\n      - c2.txt\n",
        ("c1", "c2"),
    ),
    "two_stages_one_output": Bad(
        "  d1:\n    cmd: echo 1 > dup.txt\n    deps:\n      - in.txt\n    outs:\n      - dup.txt\n"
        "  d2:\n    cmd: echo 2 > dup.txt\n    deps:\n      - in.txt\n    outs:\n      - dup.txt\n",
        ("dup.txt", "d1", "d2"),
    ),
    "output_in_parent": Bad(
        f"  bad:\n    cmd: cat in.txt > ../{OUTSIDE}/x.txt\n    deps:\n      - in.txt\n"
        f"    outs:\n      - ../{OUTSIDE}/x.txt\n",
        ("dvc.yaml:15", "bad", f"../{OUTSIDE}/x.txt"),
    ),
    "absolute_output": Bad(
        "  bad:\n    cmd: cat in.txt > {outside}/abs.txt\n    deps:\n      - in.txt\n"
        "    outs:\n      - {outside}/abs.txt\n",
        ("dvc.yaml:15", "bad", "abs.txt"),
    ),
    "output_through_symlink": Bad(
        "  bad:\n    cmd: cat in.txt > link/x.txt\n    deps:\n      - in.txt\n"
        "    outs:\n      - link/x.txt\n",
        ("dvc.yaml:15", "bad", "link/x.txt"),
        links={"link": "{outside}"},
    ),
    "wdir_in_parent": Bad(
        "  bad:\n    wdir: ..\n    cmd: echo x > x.txt\n    outs:\n      - x.txt\n",
        ("dvc.yaml:11", "bad", "wdir"),
        dvc_rejects=False,  # DVC runs it in the parent and fails only on the missing output
    ),
    "wdir_through_symlink": Bad(
        "  bad:\n    wdir: wl\n    cmd: echo x > x.txt\n    deps:\n      - ../in.txt\n"
        "    outs:\n      - x.txt\n",
        ("dvc.yaml:11", "bad", "wl"),
        links={"wl": "{outside}"},
    ),
    "missing_params_key": Bad(
        "  bad:\n    cmd: cat in.txt > x.txt\n    deps:\n      - in.txt\n    params:\n      - p.nope\n"
        "    outs:\n      - x.txt\n",
        ("bad", "p.nope", "params.yaml"),
    ),
    "image_not_present": Bad(
        "  bad:\n    cmd: cat in.txt > x.txt\n    deps:\n      - in.txt\n"
        "    meta:\n      executor:\n        image: executor-test/absent:1\n"
        "    outs:\n      - x.txt\n",
        ("bad", "executor-test/absent:1"),
        dvc_rejects=False,  # DVC has no images
    ),
}


def dvc(root: Path, *args: str) -> Proc:
    return run_cli(["dvc", *args], root, {"SHELL": "/bin/sh"})


def executor(root: Path, image: str, *args: str, env: Mapping[str, str] | None = None) -> Proc:
    argv = [sys.executable, "-m", "executor", *args]
    return run_cli(argv, root, {"EXECUTOR_IMAGE": image, **(env or {})})


def in_background(call: Any, *args: Any) -> tuple[threading.Thread, list[Proc]]:
    """Start `call(*args)` on a thread (DVC costs a second; executor runs meanwhile)."""
    box: list[Proc] = []
    thread = threading.Thread(target=lambda: box.append(call(*args)))
    thread.start()
    return thread, box


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory, busybox_image: str, dvc_bin: str) -> Path:
    """BASE after a successful `executor run`: lock, outputs, objects and run entries."""
    root = build(tmp_path_factory.mktemp("errors") / "base", BASE)
    done = executor(root, busybox_image, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(run_entries(root)) == 3
    return root


@pytest.fixture(autouse=True)
def no_containers_left(
    no_leftover_containers: None, docker_client: Any, tmp_path: Path
) -> Iterator[None]:
    yield
    assert containers_using(docker_client, tmp_path) == []


def make_case(base: Path, dest: Path, bad: Bad, outside: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True)
    text = bad.stages.replace("{outside}", str(outside))
    (dest / "dvc.yaml").write_text(FIRST + text)
    (dest / "in.txt").write_text("changed, so `first` would run again\n")
    for rel, target in bad.links.items():
        (dest / rel).symlink_to(target.replace("{outside}", str(outside)))
    return dest


def without(tree: Any, rel: str) -> dict[str, Any]:
    return {k: v for k, v in tree.items() if k != rel}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ERROR:")]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_line_and_changes_nothing(
    case: str, base_repo: Path, tmp_path: Path, busybox_image: str
) -> None:
    bad = BAD[case]
    outside = tmp_path / OUTSIDE
    outside.mkdir()
    ours = make_case(base_repo, tmp_path / "repo", bad, outside)
    if bad.dvc_rejects:
        theirs = make_case(base_repo, tmp_path / "dvc" / "repo", bad, tmp_path / "dvc" / OUTSIDE)
        (tmp_path / "dvc" / OUTSIDE).mkdir()
        thread, box = in_background(dvc, theirs, "repro")
    before = snapshot(ours)

    result = executor(ours, busybox_image, "run")
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for name in bad.names:
        assert name in errors[0]
    assert "Traceback" not in result.stderr
    assert "Running stage" not in result.stdout
    assert snapshot(ours) == before
    assert list(outside.iterdir()) == []
    if bad.dvc_rejects:
        thread.join()
        assert box[0].returncode != 0, "DVC accepted this input: the case is not bad input"


def test_no_docker_engine_is_one_error_line_and_changes_nothing(
    base_repo: Path, tmp_path: Path, busybox_image: str
) -> None:
    """`first` would run, but DOCKER_HOST names a socket nobody listens on."""
    root = make_case(base_repo, tmp_path / "repo", Bad("", ()), tmp_path / OUTSIDE)
    before = snapshot(root)
    nowhere = f"unix://{tmp_path / 'no-engine.sock'}"
    result = executor(root, busybox_image, "run", env={"DOCKER_HOST": nowhere})
    assert result.returncode == 3
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and nowhere in errors[0], result.stderr
    assert "Running stage" not in result.stdout
    assert snapshot(root) == before


FAILING = (
    FIRST
    + """\
  second:
    cmd: |
      echo partial > second.txt
      echo line-one
      echo line-two >&2
      exit 3
      echo never
    deps:
      - first.txt
    outs:
      - second.txt
  third:
    cmd: cat second.txt first.txt > third.txt
    deps:
      - second.txt
    outs:
      - third.txt
"""
)


@dataclass(frozen=True)
class Failure:
    """BASE with `second` now failing, run by executor (and by DVC on another copy)."""

    root: Path
    before: dict[str, Any]
    result: Proc
    dvc_root: Path
    dvc_result: Proc


@pytest.fixture(scope="module")
def failure(base_repo: Path, busybox_image: str) -> Failure:
    ours, theirs = base_repo.parent / "failing", base_repo.parent / "failing-dvc"
    for root in (ours, theirs):
        shutil.copytree(base_repo, root, symlinks=True)
        (root / "dvc.yaml").write_text(FAILING)
    thread, box = in_background(dvc, theirs, "repro")
    before = snapshot(ours)
    result = executor(ours, busybox_image, "run")
    thread.join()
    return Failure(ours, before, result, theirs, box[0])


def test_failing_command_is_reported_with_exit_code_and_last_lines(failure: Failure) -> None:
    result = failure.result
    assert result.returncode == 1
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "'second'" in errors[0] and "exited with 3" in errors[0]
    tail = result.stderr[result.stderr.index(errors[0]) :]
    assert "line-one" in tail and "line-two" in tail
    assert "never" not in [
        line.strip(" |") for line in (result.stdout + result.stderr).splitlines()
    ]
    assert "Running stage 'third'" not in result.stdout


def test_failing_command_records_nothing_and_downstream_does_not_run(failure: Failure) -> None:
    """Its old lock entry is kept (as DVC keeps it), no run-cache entry or object is added,
    `third` keeps its output; only the partial `second.txt` stays, as with DVC."""
    after = snapshot(failure.root)
    assert after["runs"] == failure.before["runs"]
    assert after["objects"] == failure.before["objects"]
    kept = without(after["workspace"], "second.txt")
    assert kept == without(failure.before["workspace"], "second.txt")
    assert (failure.root / "second.txt").read_text() == "partial\n"
    assert failure.dvc_result.returncode != 0
    assert lock_files(failure.dvc_root) == lock_files(failure.root)


def test_failing_command_does_not_show_lines_it_never_ran(failure: Failure) -> None:
    """DVC prints `> LINE` just before running it, so the log ends at the failing line."""
    assert failure.dvc_result.stdout.rstrip().endswith("> exit 3")
    assert "> echo never" not in failure.result.stdout


def test_symlink_out_of_the_repository_inside_an_output_dir_leaks_nothing(
    base_repo: Path, tmp_path: Path, busybox_image: str
) -> None:
    """The command links a host file (not mounted, so dangling inside the container) into
    its output directory. Hashing on the host must not follow it: the stage is refused and
    the file's content never reaches the cache (and from there a remote)."""
    secret = tmp_path / OUTSIDE / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host-only secret\n")
    root = shutil.copytree(base_repo, tmp_path / "repo", symlinks=True)
    (root / "dvc.yaml").write_text(
        FIRST + f"  leak:\n    cmd: mkdir -p ld && ln -s {secret} ld/f.txt\n"
        "    deps:\n      - in.txt\n    outs:\n      - ld\n"
    )
    before = snapshot(root)

    result = executor(root, busybox_image, "run")
    errors = error_lines(result.stderr)
    assert all(b"host-only secret" not in body for _, body in cache_objects(root).values())
    assert result.returncode != 0
    assert len(errors) == 1 and "leak" in errors[0] and "ld" in errors[0], result.stderr
    assert snapshot(root)["runs"] == before["runs"]
