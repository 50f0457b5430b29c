"""Paths from dvc.yaml, kept inside the repository (paths can never escape it)."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from executor.errors import PipelineError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class PathGuard:
    """Checks paths relative to a repo-relative directory; resolved directories are cached."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._dirs: dict[str, str] = {"": self.root, ".": self.root}

    def inside(self, base: str, path: str) -> str:
        """`path` (relative to the repo-relative `base`) as a normalised repo-relative path."""
        if not path:
            raise PipelineError("empty path")
        if "\0" in path:
            raise PipelineError(f"path {path!r} contains a NUL byte")
        if _URL.match(path):
            raise PipelineError(f"'{path}': external (URL) paths are not supported")
        if posixpath.isabs(path) or _DRIVE.match(path) or path.startswith("\\\\"):
            raise PipelineError(f"'{path}': absolute paths are not allowed")
        rel = posixpath.normpath(posixpath.join(base, path))
        if rel == ".." or rel.startswith("../"):
            raise PipelineError(f"'{path}' is outside of the repository")
        if not self._stays_inside(rel):
            raise PipelineError(
                f"'{path}' goes through a symlink that leads outside the repository"
            )
        return rel

    def _stays_inside(self, rel: str) -> bool:
        parent, _, leaf = rel.rpartition("/")
        full = os.path.join(self._real_dir(parent), leaf)
        if os.path.islink(full):
            full = os.path.realpath(full)
        return full == self.root or full.startswith(self.root + os.sep)

    def _real_dir(self, rel: str) -> str:
        found = self._dirs.get(rel)
        if found is None:
            found = os.path.realpath(os.path.join(self.root, rel))
            self._dirs[rel] = found
        return found
