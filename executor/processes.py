"""Whether a process of this host is alive: for locks and containers a killed process left."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless no process `pid` exists here (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
