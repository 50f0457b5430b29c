"""What comes back from a worker for one stage: the result of its run, or the failure it
ended with.

Both cross Redis as JSON (never pickle) and are read back by the coordinator: whoever can
write to Redis writes them, so `JobResult.from_dict` validates every field and
`failure_from_dict` never raises on odd input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executor.dvcformat.entry import Entry
from executor.errors import WIRE_KINDS, ExecutorError, InvalidJobSpec, RemoteError
from executor.jobfields import is_image_digest, string_field
from executor.store.base import is_run_name


@dataclass(frozen=True)
class JobResult:
    """A finished run: the lock entry to record and the environment that produced it."""

    address: str
    entry: Entry
    image_digest: str
    duration: float
    run_key: str | None = None  # set when a run-cache entry was written

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "entry": self.entry,
            "image_digest": self.image_digest,
            "duration": self.duration,
            "run_key": self.run_key,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobResult:
        entry = d.get("entry")
        if not isinstance(entry, Mapping):
            raise InvalidJobSpec("job result field 'entry' must be a mapping")
        key = d.get("run_key")
        duration = d.get("duration")
        digest = string_field(d, "image_digest")
        if not is_image_digest(digest):
            raise InvalidJobSpec(f"job result field 'image_digest' is not an image id: {digest!r}")
        if key is not None and not (isinstance(key, str) and is_run_name(key)):
            raise InvalidJobSpec("job result field 'run_key' is not a run-cache key")
        return cls(
            address=string_field(d, "address"),
            entry=dict(entry),
            image_digest=digest,
            duration=float(duration) if isinstance(duration, int | float) else 0.0,
            run_key=key,
        )


# A failed job travels back as its error's kind and fields, so the coordinator raises the
# same error (and exits with the same code) as if the stage had run on its own host.
def failure_to_dict(exc: ExecutorError) -> dict[str, Any]:
    """The wire form of an error a job ended with."""
    return {**exc.wire_fields(), "message": str(exc), "kind": exc.wire_kind}


def failure_from_dict(d: Mapping[str, Any], address: str) -> ExecutorError:
    """The error a job's wire failure stands for (never raises on odd input: whoever writes
    to Redis writes it)."""
    message = str(d.get("message") or f"stage '{address}' failed on a worker")
    stage = str(d.get("stage") or address)
    kind = WIRE_KINDS.get(str(d.get("kind")))
    if kind is None:
        return RemoteError(message)
    try:
        return kind.from_wire(message, stage, d)
    except (KeyError, TypeError, ValueError):
        return RemoteError(message)
