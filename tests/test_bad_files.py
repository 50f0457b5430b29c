"""Damaged files a user may have: a one-line message and exit 2, nothing changed; or, where
DVC copes, the same result as DVC."""

from __future__ import annotations

import os

import pytest

PIPELINE = "stages:\n  s:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"


@pytest.mark.parametrize(
    ("lock", "words"),
    [
        (b"\x00\xff\xfegarbage", "not UTF-8"),
        (b'schema: "2.0"\nstages:\n  s:\n    cmd: x\n    outs: 7\n', "`outs` must be a list"),
        (b'schema: "2.0"\nstages:\n  s: 5\n', "must be a mapping"),
        (b'schema: "2.0"\nstages:\n  s:\n    cmd: x\n    params: [1]\n', "`params` must map"),
    ],
)
@pytest.mark.parametrize(
    "command", [("run",), ("push", "--store", "STORE"), ("pull", "--store", "STORE")]
)
def test_a_damaged_dvc_lock_is_a_one_line_error(
    make_repo, executor_cli, tmp_path, lock: bytes, words: str, command: tuple[str, ...]
) -> None:
    root = make_repo({"dvc.yaml": PIPELINE, "in.txt": "x\n"})
    (root / "dvc.lock").write_bytes(lock)
    argv = [str(tmp_path / "store") if a == "STORE" else a for a in command]
    done = executor_cli(root, *argv)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "dvc.lock" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (root / "dvc.lock").read_bytes() == lock
    assert not (root / "out.txt").exists()


def test_a_gitignore_that_is_not_utf8_gets_its_entry_and_keeps_its_bytes(
    make_repo, executor_cli
) -> None:
    root = make_repo({"dvc.yaml": PIPELINE, "in.txt": "x\n"})
    (root / ".gitignore").write_bytes(b"# caf\xe9\nx\n")
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert (root / ".gitignore").read_bytes() == b"# caf\xe9\nx\n/out.txt\n"


def test_a_dvc_lock_temporary_of_a_killed_writer_is_removed(make_repo, executor_cli) -> None:
    root = make_repo({"dvc.yaml": PIPELINE, "in.txt": "x\n"})
    dead = root / ".dvc.lock.4194305-k1ll3d.tmp"  # above Linux's largest pid_max
    live = root / f".dvc.lock.{os.getpid()}-busy.tmp"  # a writer still at work: kept
    for path in (dead, live):
        path.write_text("schema: '2.0'\n")
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in root.glob(".dvc.lock.*")) == [live.name]  # none of its own
