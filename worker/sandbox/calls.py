"""Calls to the Docker engine: its errors as one-line SandboxErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
