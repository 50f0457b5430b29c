"""Measure one commit, not a checkout other people are editing while the harness runs.

`git archive REV executor worker` goes into the work directory, and the harness runs again
with that copy first on the import path (and on every command's PYTHONPATH), from a directory
that holds no other copy. `bench` itself still comes from the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

ENV = "BENCH_SNAPSHOT"  # set in the re-run: "<commit> <path of the copy>"


def active(env: Mapping[str, str]) -> tuple[str, Path] | None:
    """(commit, path) of the snapshot this process runs on, if any."""
    value = env.get(ENV)
    if not value:
        return None
    commit, _, path = value.partition(" ")
    return commit, Path(path)


def rerun(root: Path, rev: str, workdir: Path, argv: list[str]) -> NoReturn:
    """Extract `rev`'s executor and worker into `workdir/src` and re-run the harness on them."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", commit, "executor", "worker"], cwd=root, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    # Bytecode, as pip would have compiled for an installed executor (and has for dvc).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    env = {**os.environ, ENV: f"{commit} {src}", "PYTHONPATH": f"{src}{os.pathsep}{root}"}
    os.chdir(workdir)  # `python -m` puts the cwd first on sys.path: not the checkout
    args = [sys.executable, "-m", "bench", *argv, "--workdir", str(workdir)]
    os.execve(sys.executable, args, env)


def describe(root: Path, env: Mapping[str, str]) -> str:
    """Which executor code the run measures, for the machine line."""
    snap = active(env)
    if snap is not None:
        return f"{snap[0]} (a snapshot of that commit)"
    head = _git(root, "rev-parse", "--short", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--", "executor", "worker")
    return f"working tree at {head}" + (" with uncommitted changes" if dirty else "")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip()
