"""The root of the exception tree and the wire machinery every error crosses Redis with.

A class that declares `wire_kind` is registered in WIRE_KINDS when it is defined, so the
coordinator can raise again the error a worker's job ended with. This module imports no
branch of the tree: the branches import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

E = TypeVar("E", bound="ExecutorError")
# wire kind -> the class that declares it (see ExecutorError.wire_kind)
WIRE_KINDS: dict[str, type[ExecutorError]] = {}


class ExecutorError(Exception):
    """Base of every error executor raises on purpose."""

    exit_status: ClassVar[int] = 1  # a stage failed, or was stopped
    # How a job's failure crosses from a worker to its coordinator: its kind (a subclass
    # that declares none travels as its nearest parent's), `wire_fields`, and `from_wire`
    # to raise it again there. What comes back is read from Redis: from_wire checks it.
    wire_kind: ClassVar[str] = "error"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "wire_kind" in cls.__dict__:
            WIRE_KINDS[cls.wire_kind] = cls

    def wire_fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_wire(cls, message: str, stage: str, fields: Mapping[str, Any]) -> ExecutorError:
        """The error again, on the coordinator. KeyError, TypeError or ValueError if the
        fields are not what this kind carries."""
        return cls(message)

    def prefixed(self: E, where: str) -> E:
        """The same error, its message led by `where` (e.g. "stage 'train'"), whatever the
        class's own constructor takes."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.args = (f"{where}: {self}",)
        clone.__cause__ = self
        return clone
