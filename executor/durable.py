"""Publication that survives a power cut: data on disk before the rename that makes it visible,
and the rename itself on disk after it.

Without this, a crash shortly after a rename can leave a cache object or dvc.lock under its
final name with no data (ext4 and XFS may commit the rename before the blocks): exactly the
"partial object under its final key" that the stores otherwise rule out.
"""

from __future__ import annotations

import os


def sync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's data (written through another descriptor) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new name in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike[str], dest: str | os.PathLike[str], *, synced: bool) -> None:
    """Rename `tmp` (in `dest`'s folder) to `dest` durably. `synced`: the caller already
    fsynced `tmp`'s data through its own descriptor."""
    if not synced:
        sync_file(tmp)
    os.replace(tmp, dest)
    sync_dir(os.path.dirname(os.fspath(dest)) or ".")
