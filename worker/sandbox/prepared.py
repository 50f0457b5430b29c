"""A stage's container once created, and once started with its driver held at the gate."""

from __future__ import annotations

import logging
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from executor.errors import SandboxError
from worker.sandbox.driver import Invocation
from worker.sandbox.logs import LogCollector
from worker.sandbox.request import SandboxRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    """A created, not yet started container."""

    id: str
    invocation: Invocation
    image_id: str


@dataclass
class Prepared:
    """A started container whose driver waits at the gate (its stdin) before the first line."""

    request: SandboxRequest
    created: Created
    collector: LogCollector
    stream: Any  # the attached output, read by `pump`
    pump: threading.Thread
    gate: socket.socket | None
    settled: threading.Event  # the driver's end marker arrived, or the engine saw the exit

    def open_gate(self) -> None:
        """Let the driver run the lines (it reads one line; the lines' stdin is /dev/null).
        The gate stays open until `close_gate`: its end tells the driver's watchdog that
        this process is gone, should it die while the stage runs."""
        if self.gate is None:
            return
        try:
            self.gate.sendall(b"go\n")
        except OSError as exc:  # it exited already (no shell?): the wait tells why
            log.debug("gate of %s: %s", self.request.name, exc)

    def close_gate(self) -> None:
        """End the container's stdin; a driver still waiting exits without running anything."""
        gate, self.gate = self.gate, None
        if gate is None:
            return
        with suppress(OSError):
            gate.shutdown(socket.SHUT_WR)
        gate.close()


def raw_socket(attached: Any) -> socket.socket:
    """docker-py gives a SocketIO over the hijacked connection; writes need the socket."""
    raw = getattr(attached, "_sock", attached)
    if not isinstance(raw, socket.socket):
        raise SandboxError(f"Docker engine: unexpected stdin attachment {type(raw).__name__}")
    return raw
