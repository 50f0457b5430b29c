"""Generated repositories: trivial `cat` pipelines in chain and fan shapes.

Every command is valid for /bin/sh on the host (`dvc repro`) and busybox sh (executor):
`cat IN > OUT && echo N >> OUT`. A chain links each stage to the one before; a fan hangs
every stage off one input file, so `-j` can run them side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SEED = "hello, pipeline\n"


def out_path(i: int) -> str:
    return f"out/s{i:03d}.txt"


def stage_input(shape: str, i: int) -> str:
    return "in.txt" if shape == "fan" or i == 0 else out_path(i - 1)


def dvc_yaml(shape: str, n: int) -> str:
    lines = ["stages:"]
    for i in range(n):
        dep, out = stage_input(shape, i), out_path(i)
        lines += [
            f"  s{i:03d}:",
            f"    cmd: cat {dep} > {out} && echo {i} >> {out}",
            f"    deps: [{dep}]",
            f"    outs: [{out}]",
        ]
    return "\n".join(lines) + "\n"


def expected_output(shape: str, i: int) -> str:
    """What stage i writes, so outputs can be laid down without running anything."""
    if shape == "fan":
        return f"{SEED}{i}\n"
    return SEED + "".join(f"{k}\n" for k in range(i + 1))


def init_repo(root: Path, site_cache: Path) -> None:
    """git init and `dvc init`'s files, DVC's state kept in `site_cache` (not /var/tmp/dvc)."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    dvc = root / ".dvc"
    dvc.mkdir()
    (dvc / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (dvc / "config").write_text(
        f"[core]\n    analytics = false\n    autostage = false\n    site_cache_dir = {site_cache}\n"
    )
    (root / ".dvcignore").write_text("")


def write_pipeline(root: Path, shape: str, n: int) -> None:
    (root / "in.txt").write_text(SEED)
    (root / "out").mkdir()
    (root / "dvc.yaml").write_text(dvc_yaml(shape, n))


def write_outputs(root: Path, shape: str, n: int) -> None:
    for i in range(n):
        (root / out_path(i)).write_text(expected_output(shape, i))


def remove_outputs(root: Path) -> None:
    """Delete every stage output (the files; `out/` itself stays)."""
    for entry in os.scandir(root / "out"):
        if entry.name.endswith(".txt"):
            os.unlink(entry.path)


def copy_repo(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    return dst
