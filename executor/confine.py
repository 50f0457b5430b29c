"""Paths inside a root, never outside it: what a workspace operation may touch."""

from __future__ import annotations

import os
from pathlib import Path

from executor.errors import WorkspaceError


def inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing a path that leaves the root (also through symlinks)."""
    path = root / rel
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise WorkspaceError(f"path '{rel}' resolves outside {root} ({real})")
    return path
