"""Inputs made once per harness run in the work directory and shared by scenarios: pipeline
templates, committed pipelines, pipelines after a real run, the big file and the trees."""

from __future__ import annotations

import os
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.hashing_probe import make_big, make_tree
from bench.tools import Tools


class Inputs:
    """Memoised builders; each returns a path that callers copy before changing it."""

    def __init__(self, config: Config, tools: Tools) -> None:
        self.config, self.tools = config, tools
        self.root = config.workdir
        self.site_cache = self.root / "dvc-site"  # DVC's state for every generated repo
        self._ran: dict[tuple[str, str, int], Path] = {}
        self._copies = 0

    def fresh(self, name: str) -> Path:
        """A new empty path in the work directory."""
        self._copies += 1
        return self.root / "repos" / f"{self._copies:04d}-{name}"

    def template(self, shape: str, n: int) -> Path:
        """A pipeline that has never run: dvc.yaml, in.txt, an empty out/."""
        path = self.root / "templates" / f"{shape}-{n}"
        if not path.exists():
            pipelines.init_repo(path, self.site_cache)
            pipelines.write_pipeline(path, shape, n)
        return path

    def committed(self, shape: str, n: int) -> Path:
        """The pipeline up to date without running it: outputs written as the commands would
        write them, then `dvc commit` records dvc.lock and caches them (no run-cache)."""
        path = self.root / "committed" / f"{shape}-{n}"
        if not path.exists():
            pipelines.copy_repo(self.template(shape, n), path)
            pipelines.write_outputs(path, shape, n)
            self.tools.dvc(path, "commit", "-f", "-q")
        return path

    def remember_ran(self, tool: str, shape: str, n: int, path: Path) -> None:
        self._ran[(tool, shape, n)] = path

    def ran(self, tool: str, shape: str, n: int) -> Path:
        """The pipeline after a first run by `tool` ("executor" or "dvc"): outputs, dvc.lock
        and that tool's own run-cache entries."""
        key = (tool, shape, n)
        if key not in self._ran:
            path = pipelines.copy_repo(self.template(shape, n), self.fresh(f"ran-{tool}"))
            if tool == "executor":
                self.tools.executor(path, "run", "-j", str(self.config.jobs))
            else:
                self.tools.dvc(path, "repro", "-q")
            self._ran[key] = path
        return self._ran[key]

    def big_file(self) -> Path:
        path = self.root / "data" / "big.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_big(path, self.config.big_bytes / 2**30)
        return path

    def tree(self) -> Path:
        """The many-file directory (hashing_probe's: 100 subfolders, 10..4000 bytes each, mtimes
        an hour old so state caches may remember them)."""
        path = self.root / "data" / "tree"
        make_tree(path, self.config.tree_files)
        return path

    def small_files(self) -> Path:
        """`small_files` random files of `small_bytes` each."""
        path = self.root / "data" / "small"
        if not path.exists():
            path.mkdir(parents=True)
            for i in range(self.config.small_files):
                (path / f"f{i:05d}.bin").write_bytes(os.urandom(self.config.small_bytes))
        return path

    def transfer_big(self) -> Path:
        path = self.root / "data" / "push.bin"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                for _ in range(self.config.transfer_big_bytes // 2**20):
                    f.write(os.urandom(2**20))
        return path
