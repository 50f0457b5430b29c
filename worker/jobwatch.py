"""What a fleet job watches while its stage runs: its heartbeat to keep, a cancel request in
Redis, and its worker being stopped (SIGTERM: a drain).

A job whose heartbeat cannot reach Redis for FENCE_AFTER seconds is stopped the same way
(fenced): it may be taken over (keys.py).

A drained worker takes no new job (RQ's warm shutdown) and gives its running stage the
worker's drain grace. A stage that ends within it ends as usual; one that does not is
stopped like a cancelled one, and its job ends handed over (JobHandedOver), which the
coordinator runs again on another worker, from the start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from executor.fleet.keys import (
    ALIVE_EVERY,
    ALIVE_TTL,
    FENCE_AFTER,
    LOST_AFTER,
    alive_key,
    cancel_key,
)

log = logging.getLogger(__name__)

CANCEL_POLL = 0.25  # seconds between looks for a cancel request
WATCH_JOIN = 5.0  # seconds the job waits for its watcher to stop (it may be stuck on Redis)


def fence_after(stop_grace: float) -> float:
    """Seconds without a landed heartbeat before a stage is fenced: FENCE_AFTER, or less when
    the stop grace is long, so that the stage is dead (SIGKILL after the grace) before anyone
    may count its worker lost, ALIVE_TTL + LOST_AFTER after its last heartbeat. Never less
    than ALIVE_TTL: a stop grace over ~45 s weakens that promise (docs/operations.md)."""
    return max(float(ALIVE_TTL), min(float(FENCE_AFTER), ALIVE_TTL + LOST_AFTER - stop_grace - 3))


@dataclass
class JobWatch:
    """The events one job's stage is stopped by; `watch` runs in a thread of its own."""

    job_id: str
    drain_grace: float
    cancel: threading.Event = field(default_factory=threading.Event)  # stop the stage
    drain: threading.Event = field(default_factory=threading.Event)  # the worker is stopping
    handed_over: threading.Event = field(default_factory=threading.Event)  # stopped for it
    done: threading.Event = field(default_factory=threading.Event)  # the job has its outcome
    beaten: float = field(default_factory=time.monotonic)  # its last heartbeat that landed
    fence_after: float = FENCE_AFTER

    def on_sigterm(self) -> None:
        """In the work horse: SIGTERM (from its worker, or sent to every process of the
        worker by systemd or a container's stop) starts a drain instead of killing it."""
        if threading.current_thread() is not threading.main_thread():
            return  # run_job called outside a work horse: signals are the caller's

        def drain(signum: int, frame: FrameType | None) -> None:
            self.drain.set()

        signal.signal(signal.SIGTERM, drain)

    def watch(self, redis: Any) -> None:
        """While the job lives: beat its heartbeat, look for a cancel request, and stop the
        stage once a drain has lasted its grace. The beat is left to expire, never deleted:
        the outcome is in the stream before it could lapse."""
        beat = 0.0
        drained_at: float | None = None
        while True:
            now = time.monotonic()
            if self.drain.is_set() and not self.cancel.is_set():
                if drained_at is None:
                    drained_at = now
                    log.warning(
                        "job %s: the worker is stopping; the stage has %g s to end before it "
                        "is handed over", self.job_id, self.drain_grace,
                    )  # fmt: skip
                if now - drained_at >= self.drain_grace:
                    self.handed_over.set()
                    self.cancel.set()
            try:
                if now - beat >= ALIVE_EVERY:
                    redis.set(alive_key(self.job_id), "1", ex=ALIVE_TTL)
                    beat = self.beaten = now
                if redis.exists(cancel_key(self.job_id)):
                    self.handed_over.clear()  # asked for: a cancel, not a hand-over
                    self.cancel.set()
            except Exception as exc:  # Redis away for a moment: the stage goes on
                log.warning("cannot reach Redis from job %s: %s", self.job_id, exc)
            if self.done.wait(CANCEL_POLL):
                return

    def fence(self) -> None:
        """Stop the stage and hand it over once no heartbeat has reached Redis for
        `fence_after` seconds: cut off (a partition, a long Redis outage), this worker may
        soon count as lost and its stage be run elsewhere (keys.LOST_AFTER). In a thread of
        its own: a call to an unreachable Redis can block the watcher for its retries."""
        while not self.done.wait(1.0):
            silent = time.monotonic() - self.beaten
            if silent >= self.fence_after and not self.cancel.is_set():
                log.warning(
                    "job %s: no heartbeat has reached Redis for %.0f s; the stage is stopped "
                    "and handed over, as another worker may be given it", self.job_id, silent,
                )  # fmt: skip
                self.handed_over.set()
                self.cancel.set()

    def start(self, redis: Any) -> threading.Thread:
        threading.Thread(target=self.fence, daemon=True).start()
        thread = threading.Thread(target=self.watch, args=(redis,), daemon=True)
        thread.start()
        return thread
