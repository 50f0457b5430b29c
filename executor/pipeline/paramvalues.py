"""What a params value may be (DVC must carry it into dvc.lock and the run-cache key), and
when two values are the same."""

from __future__ import annotations

import json
from typing import Any

from executor.errors import PipelineError

_PLAIN = (str, int, float, bool, type(None))
MAX_DEPTH = 300  # DVC itself fails (RecursionError) on params nested ~450 levels deep


def check_plain(value: Any, where: str) -> None:
    """Reject values DVC cannot carry (dates, binary, sets) or nest (more than MAX_DEPTH
    levels), naming `file:dotted.path`."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, here, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise PipelineError(
                    f"'{where}' is nested more than {MAX_DEPTH} levels deep; flatten it"
                )
            if isinstance(node, dict):
                _check_keys(node, here)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((item, f"{here}.{key}", depth + 1) for key, item in items)
        elif not isinstance(node, _PLAIN):
            raise PipelineError(f"Unsupported value of type '{type(node).__name__}' in '{here}'")


def _check_keys(node: dict[Any, Any], where: str) -> None:
    """Keys the run-cache key can carry: scalars, of types json's sort_keys can order."""
    if all(type(name) is str for name in node):
        return
    for name in node:
        if not isinstance(name, _PLAIN):  # a date or binary key
            raise PipelineError(
                f"Unsupported key of type '{type(name).__name__}' in '{where}': {name!r}; "
                "DVC cannot carry it either: quote it"
            )
    try:  # the run-cache key sorts them (json sort_keys), as DVC's does
        sorted(node)
    except TypeError:
        raise PipelineError(
            f"the keys of '{where}' mix types that cannot be sorted "
            f"({', '.join(sorted({type(name).__name__ for name in node}))}); DVC fails on them "
            "too: make them all strings or all numbers"
        ) from None


def same_values(a: Any, b: Any) -> bool:
    """Whether two params values are the same once sent as JSON (as a job spec sends them):
    true is not 1, nor 1 the same as 1.0, but the key -2 is the key '-2'."""
    return _as_json(_through_json(a)) == _as_json(_through_json(b))


def _through_json(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def _as_json(value: Any) -> str | None:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return None
