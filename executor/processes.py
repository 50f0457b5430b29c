"""Whether a process of this host is alive: for locks and containers a killed process left."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless no process `pid` runs here (one of another user counts as alive, a
    zombie as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited: nobody (an init that does not reap) has collected it yet.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (/proc), or None: with its pid,
    it names one process even after the pid is reused (a restarted container's worker)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None
