"""Paths inside a root, never outside it: what a workspace operation may touch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def parent_fd(root: Path, rel: str) -> Iterator[tuple[int, str] | None]:
    """The folder holding `root/rel`, opened and checked to be inside `root`, and rel's last
    name: operate on that name through the descriptor (`dir_fd=`, never following a link)
    and nothing can be redirected out of the root between the check and the change, as a
    path check followed by a path operation can (a stage running beside it may swap a
    folder for a link in between). None if the folder does not exist."""
    inside(root, rel)  # the message for a path that plainly leads out
    folder, _, name = os.path.normpath(rel).rpartition("/")
    try:
        fd = os.open(root / folder if folder else root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")  # what was opened, wherever links led
        real_root = os.path.realpath(root)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise WorkspaceError(f"path '{rel}' resolves outside {root} ({real}/{name})")
        yield fd, name
    finally:
        os.close(fd)


def check_link(path: str, within: tuple[str, ...]) -> None:
    """WorkspaceError unless the symlink `path` resolves inside one of `within` (real paths)."""
    real = os.path.realpath(path)
    if not any(real == top or real.startswith(top.rstrip(os.sep) + os.sep) for top in within):
        raise WorkspaceError(
            f"'{path}' is a symlink leading outside the repository (to {os.readlink(path)}); "
            "executor never follows it: replace it with the data or a link inside the repository"
        )
