"""Measure executor.hashing against md5sum and `dvc add --no-commit` (best of N runs each).

    PYTHONPATH=. python bench/hashing_probe.py [--workdir DIR] [--gib 1] [--files 10000] [--runs 3]

Builds a big random file and a directory of small random files (100 subdirectories), ages their
mtimes by an hour (the state cache does not remember files modified in the last 2 s), then
prints seconds per case. Page cache is warm for every case: this measures CPU, not the disk.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from executor.hashing.digests import file_md5
from executor.hashing.hasher import Hasher


def best(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_big(path: Path, gib: float) -> None:
    if path.exists() and path.stat().st_size == int(gib * 2**30):
        return
    with open(path, "wb") as f:
        for _ in range(int(gib * 1024)):
            f.write(os.urandom(2**20))


def make_tree(top: Path, files: int) -> None:
    if top.exists():
        return
    rng = random.Random(1)
    for i in range(files):
        d = top / f"d{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(rng.randint(10, 4000)))
    old = time.time_ns() - 3600 * 10**9
    for dirpath, _, names in os.walk(top):
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(old, old))


def dvc_add(repo: Path) -> None:
    shutil.rmtree("/var/tmp/dvc", ignore_errors=True)  # DVC's own state cache: start cold
    (repo / "data.dvc").unlink(missing_ok=True)
    subprocess.run(["dvc", "add", "--no-commit", "-q", "data"], cwd=repo, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hashprobe"))
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    big, repo = work / "big.bin", work / "repo"
    make_big(big, args.gib)
    make_tree(repo / "data", args.files)
    if not (repo / ".dvc").exists():
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)

    def md5sum() -> None:
        subprocess.run(["md5sum", str(big)], check=True, capture_output=True)

    for _ in range(2):  # interleaved, since this machine is shared and noisy
        t_sum = best(args.runs, md5sum)
        t_py = best(args.runs, lambda: file_md5(big))
        mib = args.gib * 1024
        print(f"big file: md5sum {t_sum:.3f}s ({mib / t_sum:.0f} MiB/s)  ", end="")
        print(f"file_md5 {t_py:.3f}s ({mib / t_py:.0f} MiB/s) = {t_sum / t_py:.0%} of md5sum")

    state = work / "state.sqlite"
    data = repo / "data"

    def cold(workers: int | None = None) -> None:
        with Hasher(None, workers=workers, root=repo) as h:
            h.hash_tree(data)

    def first_pass() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        with Hasher(state, root=repo) as h:
            h.hash_tree(data)

    def warm() -> None:
        with Hasher(state, root=repo) as h:
            h.hash_tree(data)
            assert h.files_read == 0

    t_dvc = best(args.runs, lambda: dvc_add(repo))
    print(f"{args.files} files: dvc add --no-commit (cold) {t_dvc:.3f}s")
    print(f"  hash_tree, no state, 1 worker  {best(args.runs, lambda: cold(1)):.3f}s")
    print(f"  hash_tree, no state, default   {best(args.runs, cold):.3f}s")
    print(f"  hash_tree, first pass + state  {best(args.runs, first_pass):.3f}s")
    print(f"  hash_tree, warm (state hits)   {best(args.runs, warm):.3f}s")


if __name__ == "__main__":
    main()
