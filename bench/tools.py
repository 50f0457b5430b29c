"""The command lines compared: `executor`, `dvc`, `docker`, `md5sum`, each a real process."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import Config
from bench.measure import Run, run


def console(name: str, module: str) -> list[str]:
    """The tool's console script beside this interpreter: the one pip installed. Not a
    version manager's shim on PATH (pyenv's costs 65-85 ms a call), or both sides pay it."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


@dataclass(frozen=True)
class Tools:
    """Runs each tool with the harness's environment (EXECUTOR_IMAGE, fake AWS keys, ...)."""

    config: Config

    def executor(self, root: Path, *args: str, rss: bool = False) -> Run:
        return run([*console("executor", "executor"), *args], root, self.config.env, rss)

    def dvc(self, root: Path, *args: str, rss: bool = False) -> Run:
        return run([*console("dvc", "dvc"), *args], root, self.config.env, rss)

    def docker(self, *args: str, cwd: Path | None = None) -> Run:
        return run(["docker", *args], cwd, self.config.env)

    def python(self, module: str, *args: str, cwd: Path | None = None) -> Run:
        return run([sys.executable, "-m", module, *args], cwd, self.config.env)

    def command(self, argv: Sequence[str], cwd: Path | None = None) -> Run:
        return run(argv, cwd, self.config.env)
