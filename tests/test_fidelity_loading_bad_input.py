"""Bad input met while loading settings and the pipeline (issue 16): each is a one-line
error with exit code 2, no traceback, and the repository left exactly as it was.

Every case starts from a copy of one repository that `executor run` has already run (a
dvc.lock, outputs, cache objects and run-cache entries to keep intact), with `in.txt`
changed so that its stage would run again, and then adds the bad input.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import run_cli
from tests.oracle_projects import Project, build, containers_using, snapshot

STAGE = """\
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
BASE = Project(files={"in.txt": "hello\n", "params.yaml": "p:\n  a: 1\n", "dvc.yaml": STAGE})


def _fifo(root: Path) -> None:
    import os

    os.mkfifo(root / "pipe")


def _socket(root: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "pipe"))
    sock.close()


def _deep_json(root: Path) -> None:
    depth = 100_000
    (root / "deep.json").write_text('{"a": ' + "[" * depth + "]" * depth + "}")


@dataclass(frozen=True)
class Bad:
    """Files to write (or a function to call) on a copy, and what the one line must say."""

    names: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    make: Callable[[Path], None] | None = None
    transient: str | None = None  # what `make` made, left out of the snapshots (a FIFO)


def _stage(extra: str) -> str:
    return STAGE + extra


DEP_PIPE = (
    "  reader:\n    cmd: cat pipe > r.txt\n    deps:\n      - pipe\n    outs:\n      - r.txt\n"
)

BAD: dict[str, Bad] = {
    "config_jobs_word": Bad((".executor.yaml", "jobs", "many"), {".executor.yaml": "jobs: many\n"}),
    "config_jobs_list": Bad((".executor.yaml", "jobs", "[1]"), {".executor.yaml": "jobs: [1]\n"}),
    "config_jobs_zero": Bad((".executor.yaml", "jobs", "0"), {".executor.yaml": "jobs: 0\n"}),
    "config_grace_word": Bad(
        (".executor.yaml", "stop_grace", "soon"), {".executor.yaml": "stop_grace: soon\n"}
    ),
    "config_grace_negative": Bad(
        (".executor.yaml", "stop_grace", "-1"), {".executor.yaml": "stop_grace: -1\n"}
    ),
    "config_image_list": Bad(
        (".executor.yaml", "image", "[1]"), {".executor.yaml": "image: [1]\n"}
    ),
    "config_env_nested": Bad(
        (".executor.yaml", "env", "'A'"), {".executor.yaml": "env: {A: [1]}\n"}
    ),
    "config_queue_mapping": Bad((".executor.yaml", "queue"), {".executor.yaml": "queue: {a: 1}\n"}),
    "env_jobs_zero": Bad(("EXECUTOR_JOBS", "'0'"), env={"EXECUTOR_JOBS": "0"}),
    "env_jobs_negative": Bad(("EXECUTOR_JOBS", "'-1'"), env={"EXECUTOR_JOBS": "-1"}),
    "env_grace_word": Bad(("EXECUTOR_STOP_GRACE", "'soon'"), env={"EXECUTOR_STOP_GRACE": "soon"}),
    "deep_dvc_yaml": Bad(
        ("dvc.yaml", "nested too deeply"),
        {"dvc.yaml": _stage("    meta: " + "[" * 5000 + "]" * 5000 + "\n")},
    ),
    "deep_config": Bad(
        (".executor.yaml", "nested too deeply"),
        {".executor.yaml": "x: " + "[" * 5000 + "]" * 5000 + "\n"},
    ),
    "deep_dvc_lock": Bad(
        ("nested too deeply",),
        {
            "dvc.lock": "schema: '2.0'\nstages:\n  first:\n    cmd: "
            + "[" * 5000
            + "]" * 5000
            + "\n"
        },
    ),
    "deep_params_json": Bad(
        ("deep.json", "first", "nested too deeply"),
        {"dvc.yaml": STAGE.replace("- p.a\n", "- p.a\n      - deep.json:\n          - a\n")},
        make=_deep_json,
    ),
    "params_nested_beyond_dvc": Bad(
        ("first", "deep.yaml:a", "levels deep"),
        {
            "dvc.yaml": STAGE.replace("- p.a\n", "- p.a\n      - deep.yaml:\n          - a\n"),
            "deep.yaml": "a: " + "[" * 600 + "]" * 600 + "\n",
        },
    ),
    "stage_name_with_at": Bad(
        ("dvc.yaml:10", "a@b", "'@'"),
        {"dvc.yaml": STAGE + "  a@b:\n    cmd: echo > ab.txt\n    outs:\n      - ab.txt\n"},
    ),
    "missing_wdir": Bad(
        ("first", "nowhere", "wdir"),
        {"dvc.yaml": STAGE.replace("    cmd: tr", "    wdir: nowhere\n    cmd: tr")},
    ),
    "broken_params_yaml": Bad(("params.yaml:3", "invalid YAML"), {"params.yaml": "p:\n  a: [1\n"}),
    "fifo_dep": Bad(
        ("reader", "pipe", "not a regular file"),
        {"dvc.yaml": STAGE.replace("stages:\n", "stages:\n" + DEP_PIPE)},
        make=_fifo,
        transient="pipe",
    ),
    "socket_dep": Bad(
        ("reader", "pipe", "not a regular file"),
        {"dvc.yaml": STAGE.replace("stages:\n", "stages:\n" + DEP_PIPE)},
        make=_socket,
        transient="pipe",
    ),
    "glob_key_matching_two": Bad(
        ("first", "p.*", "more than one"),
        {"dvc.yaml": STAGE.replace("- p.a", "- p.*"), "params.yaml": "p:\n  a: 1\n  b: 2\n"},
    ),
    "params_date_key": Bad(
        ("first", "params.yaml:p.a", "date"), {"params.yaml": "p:\n  a: {2020-01-01: 1}\n"}
    ),
    "params_int_key_in_a_whole_file": Bad(
        ("first", "'whole.yaml'", "key 1", "not a string"),
        {
            "dvc.yaml": STAGE.replace("- p.a\n", "- p.a\n      - whole.yaml:\n"),
            "whole.yaml": "1: one\n-2: minus two\n",
        },
    ),
    "params_date_key_in_a_whole_file": Bad(
        ("first", "'whole.yaml'", "date"),
        {
            "dvc.yaml": STAGE.replace("- p.a\n", "- p.a\n      - whole.yaml:\n"),
            "whole.yaml": "2020-01-01: 1\n",
        },
    ),
    "params_keys_of_mixed_types": Bad(
        ("first", "params.yaml"),
        {"params.yaml": "p:\n  a: {true: 1, null: 2}\n"},
    ),
}


def executor(root: Path, image: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
    argv = [sys.executable, "-m", "executor", *args]
    return run_cli(argv, root, {"EXECUTOR_IMAGE": image, **(env or {})})


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Path:
    root = build(tmp_path_factory.mktemp("loading-errors") / "base", BASE)
    done = executor(root, busybox_image, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(autouse=True)
def no_containers_left(docker_client: Any, tmp_path: Path) -> Iterator[None]:
    yield
    assert containers_using(docker_client, tmp_path) == []


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case: str, base_repo: Path, tmp_path: Path, busybox_image: str
) -> None:
    bad = BAD[case]
    root = tmp_path / "repo"
    shutil.copytree(base_repo, root, symlinks=True)
    (root / "in.txt").write_text("changed, so `first` would run again\n")
    for rel, text in bad.files.items():
        (root / rel).write_text(text)
    if bad.make is not None and bad.transient is None:
        bad.make(root)
    before = snapshot(root)
    if bad.make is not None and bad.transient is not None:
        bad.make(root)
    done = executor(root, busybox_image, "run", env=bad.env)
    if bad.transient is not None:
        (root / bad.transient).unlink()
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("ERROR: ")
    for name in bad.names:
        assert name in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert "Running stage" not in done.stdout
    assert snapshot(root) == before
