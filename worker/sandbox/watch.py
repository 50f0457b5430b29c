"""Wait for a running container while watching for cancel and the deadline.

Cancel sends the cancel signal, the deadline SIGTERM; either is followed by SIGKILL once the grace
period is over. Which of the two happened is remembered here rather than read from the exit
code, since a command may exit 130 or 143 on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

POLL = 0.05  # how often the cancel event and the deadline are looked at

Stopped = Literal["cancelled", "timed_out"]


def watch(
    wait: Callable[[], int],
    kill: Callable[[str], None],
    *,
    cancel: threading.Event | None,
    deadline: float | None,
    grace: float,
    cancel_signal: str,
) -> tuple[int, Stopped | None]:
    """`wait()`'s exit code, and why we stopped the container if we did.

    `deadline` is on the time.monotonic() clock. `wait` runs in a thread of its own; its
    exception, if any, is raised here.
    """
    if cancel is None and deadline is None:
        return wait(), None
    done = threading.Event()
    box: dict[str, int | BaseException] = {}

    def waiter() -> None:
        try:
            box["code"] = wait()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=waiter, name="sandbox-wait", daemon=True).start()
    stopped: Stopped | None = None
    kill_at: float | None = None
    while not done.wait(POLL):
        now = time.monotonic()
        if stopped is None and cancel is not None and cancel.is_set():
            stopped, kill_at = "cancelled", now + grace
            kill(cancel_signal)
        elif stopped is None and deadline is not None and now >= deadline:
            stopped, kill_at = "timed_out", now + grace
            kill("SIGTERM")
        elif kill_at is not None and now >= kill_at:
            kill_at = None
            kill("SIGKILL")
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    code = box["code"]
    assert isinstance(code, int)
    return code, stopped
