"""DVC's per-path locks, `.dvc/tmp/rwlock`: while `dvc repro` runs a stage's command it holds
these (reads on the deps, writes on the outs) and lets go of the repository lock, so the
repository lock alone does not tell executor that DVC is at work."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.errors import WorkspaceError
from executor.processes import pid_alive

GUARD_WAIT = 3.0  # seconds; DVC holds rwlock.lock only while it edits the file


@dataclass(frozen=True)
class Holder:
    """A live DVC process holding a path."""

    path: str
    pid: int
    cmd: str
    mode: str  # "read" or "write"


def live_holders(tmp_dir: Path, *, guarded: bool = True) -> list[Holder]:
    """Entries of `tmp_dir/rwlock` whose process is alive (DVC drops a dead one's itself).
    `guarded`: read under DVC's flock on rwlock.lock; with core.hardlink_lock DVC guards it
    with a lock file of its own kind instead, so the file is read as it is (again if DVC
    was halfway through writing it)."""
    path = tmp_dir / "rwlock"
    if not path.exists():
        return []
    if not guarded:
        return [h for h in _holders(_read_settled(path)) if pid_alive(h.pid)]
    fd = os.open(tmp_dir / "rwlock.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait_for(fd, tmp_dir / "rwlock.lock")
        data = _read(path)
    finally:
        os.close(fd)
    return [h for h in _holders(data) if pid_alive(h.pid)]


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkspaceError(
            f"{path} is not DVC's lock file ({exc}); if no DVC command is running, remove it"
        ) from None


def _read_settled(path: Path) -> Any:
    deadline = time.monotonic() + GUARD_WAIT
    while True:
        try:
            return _read(path)
        except WorkspaceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_for(fd: int, guard: Path) -> None:
    deadline = time.monotonic() + GUARD_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise WorkspaceError(
                    f"{guard} stays locked: a DVC command is editing its locks; wait for it"
                ) from None
            time.sleep(0.05)


def _holders(data: Any) -> list[Holder]:
    if not isinstance(data, dict):
        return []
    found = []
    writes, reads = data.get("write") or {}, data.get("read") or {}
    for path, info in writes.items() if isinstance(writes, dict) else ():
        found += _holder(path, info, "write")
    for path, infos in reads.items() if isinstance(reads, dict) else ():
        for info in infos if isinstance(infos, list) else ():
            found += _holder(path, info, "read")
    return found


def _holder(path: str, info: Any, mode: str) -> list[Holder]:
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return []
    return [Holder(str(path), info["pid"], str(info.get("cmd", "dvc")), mode)]
