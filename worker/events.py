"""A job's side of its Redis stream: log lines (within a byte budget), line starts, the end."""

from __future__ import annotations

import logging
from typing import Any

from executor.fleet.keys import EVENTS_TTL, events_key

log = logging.getLogger(__name__)

STREAM_MAX = 20_000  # log events kept per job (a backstop behind the byte budget)
LOG_BYTES = 1 << 20  # default byte budget of a job's log stream (--log-bytes)


class Events:
    """The job's side of its Redis stream. Log lines have a byte budget: past it the stream
    says once that it was cut, and the stage runs on (its failure still carries the end of
    its output, which the sandbox keeps apart)."""

    def __init__(self, redis: Any, job_id: str, budget: int = LOG_BYTES) -> None:
        self.redis = redis
        self.key = events_key(job_id)
        self.left = budget
        self.budget = budget

    def _add(self, kind: str, value: str) -> None:
        try:
            with self.redis.pipeline(transaction=False) as pipe:  # one round trip
                pipe.xadd(self.key, {"t": kind, "v": value}, maxlen=STREAM_MAX, approximate=True)
                pipe.expire(self.key, EVENTS_TTL)
                pipe.execute()
        except Exception as exc:  # a lost log line must not fail the stage
            log.warning("cannot send a log line to Redis: %s", exc)

    def log(self, text: str) -> None:
        if self.left < 0:
            return
        self.left -= len(text.encode("utf-8", "replace")) + 1
        if self.left >= 0:
            self._add("log", text)
        else:
            self._add(
                "log",
                f"executor: the rest of this stage's log is not relayed (over the worker's "
                f"{self.budget} bytes, executor-worker --log-bytes); the stage runs on",
            )

    def line(self, index: int) -> None:
        self._add("line", str(index))

    def end(self, outcome: str) -> None:
        self._add("end", outcome)
