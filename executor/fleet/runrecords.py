"""The records of a fleet run: its facts (RunInfo) and each stage's state (StageState), as
they are kept in Redis (fleet.runs) and read back from there, checked for shape."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.errors import UserError

_RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")


def new_run_id() -> str:
    """Sortable by time, unguessable enough not to collide: 20261207-144501-3fa9c2."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def is_run_id(value: str) -> bool:
    return _RUN_ID.fullmatch(value) is not None


@dataclass
class RunInfo:
    """A run's facts."""

    id: str
    user: str
    host: str
    repo: str
    created: float
    store_url: str
    order: list[str]  # stage addresses in plan order
    waits: dict[str, list[str]]  # stage -> the stages it waits for
    detached: bool = True
    state: str = "running"  # running, succeeded, failed, cancelled
    ended: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def where(self) -> str:
        """The repository as RQ's tools show it: `name (user@host)`."""
        return f"{os.path.basename(self.repo.rstrip('/'))} ({self.user}@{self.host})"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunInfo:
        try:
            return cls(
                id=str(d["id"]),
                user=str(d.get("user", "")),
                host=str(d.get("host", "")),
                repo=str(d.get("repo", "")),
                created=float(d.get("created", 0)),
                store_url=str(d.get("store_url", "")),
                order=[str(a) for a in d.get("order", [])],
                waits={str(k): [str(u) for u in v] for k, v in d.get("waits", {}).items()},
                detached=bool(d.get("detached", True)),
                state=str(d.get("state", "running")),
                ended=float(d["ended"]) if d.get("ended") is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"run record is malformed ({exc})") from None


@dataclass
class StageState:
    """One stage of a run."""

    state: str = "waiting"
    job: str | None = None
    queue: str | None = None
    worker: str | None = None
    queued: float | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None  # a JobResult's dict, once settled
    error: dict[str, Any] | None = None  # a failure's wire form
    note: str = ""  # e.g. why it runs, or what it follows
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)  # key order kept: lock items keep DVC's order

    @classmethod
    def from_json(cls, text: bytes | str | None) -> StageState:
        """A stage's record; one a Redis writer made malformed (a field of another type)
        reads as failed, never as a crash."""
        if not text:
            return cls()
        try:
            d = json.loads(text)
            known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
            state = cls(**known)
        except (ValueError, TypeError, AttributeError):
            state = None
        if state is None or not _well_typed(state):
            return cls(state="failed", note="its record in Redis is malformed")
        return state


def _well_typed(state: StageState) -> bool:
    times = (state.queued, state.started, state.ended)
    return (
        isinstance(state.state, str)
        and all(isinstance(v, str | None) for v in (state.job, state.queue, state.worker))
        and all(isinstance(t, int | float | None) and not isinstance(t, bool) for t in times)
        and isinstance(state.attempts, int)
        and not isinstance(state.attempts, bool)
        and all(isinstance(v, dict | None) for v in (state.result, state.error))
        and isinstance(state.note, str)
        and isinstance(state.extra, dict)
    )


def who() -> tuple[str, str]:
    """The submitting user and host, as `executor runs` shows them."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()
