"""Checks of the JSON fields a job spec or a job result is read from.

Whoever can write to the queue or to Redis writes these fields: each check raises
InvalidJobSpec naming the field, so a worker or a coordinator refuses what does not fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from executor.errors import InvalidJobSpec


def string_field(d: Mapping[str, Any], name: str) -> str:
    """The field `name`, which must be a string."""
    value = d.get(name)
    if not isinstance(value, str):
        raise InvalidJobSpec(f"job spec field '{name}' must be a string, got {value!r}")
    return value


def workspace_relative(path: str, field_name: str) -> str:
    """`path`, if it names a place inside the workspace: relative, no NUL, never above it."""
    parts = path.split("/")
    if path.startswith("/") or "\x00" in path or (".." in parts and escapes_root(parts)):
        raise InvalidJobSpec(f"job spec field '{field_name}' escapes the workspace: {path!r}")
    return path


def escapes_root(parts: list[str]) -> bool:
    """Whether a relative path's parts climb above the folder they start from."""
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def is_string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def list_field(d: Mapping[str, Any], name: str) -> list[Any]:
    value = d.get(name) or []
    if not isinstance(value, list):
        raise InvalidJobSpec(f"job spec field '{name}' must be a list")
    return value


def mapping_field(d: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = d.get(name) or {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidJobSpec(f"job spec field '{name}' must be a mapping with string keys")
    return dict(value)


_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_image_digest(value: object) -> TypeGuard[str]:
    """An image digest as a worker's engine resolves one (`sha256:` and 64 hex digits)."""
    return isinstance(value, str) and _IMAGE_DIGEST.fullmatch(value) is not None
