"""Calls to the Docker engine: its errors as one-line SandboxErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker.errors
import requests.exceptions

from executor.errors import SandboxError


@contextmanager
def engine_call(what: str) -> Iterator[None]:
    """Docker SDK and HTTP errors inside as SandboxError("Docker engine: WHAT failed: ...")."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(f"Docker engine: {what} failed: {exc}") from exc


def inspect_container(client: Any, container_id: str, what: str) -> dict[str, Any] | None:
    """The engine's record of a container, or None if it has none (removed, or another
    engine's); other errors as SandboxError."""
    try:
        with engine_call(what):
            found: dict[str, Any] = client.api.inspect_container(container_id)
    except SandboxError as exc:
        if isinstance(exc.__cause__, docker.errors.NotFound):
            return None
        raise
    return found
