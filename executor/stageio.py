"""What one stage's run listens to and reports to, handed down as one object from the runner
through its backend to the sandbox (or to a fleet job followed from Redis)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class StageIO:
    """`cancel` set: stop the stage (the cancel signal, SIGKILL after the grace); `on_log`
    gets each output line as it comes, `on_line` the 1-based index of each command line as
    it starts (DVC prints `> LINE` then). Compared by identity."""

    cancel: threading.Event = field(default_factory=threading.Event)
    on_log: Callable[[str], None] | None = None
    on_line: Callable[[int], None] | None = None

    def log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(text)

    def line(self, index: int) -> None:
        if self.on_line is not None:
            self.on_line(index)
