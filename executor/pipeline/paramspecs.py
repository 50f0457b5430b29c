"""A stage's `params` list (dvc.yaml) read into ParamSpecs, by DVC's `_merge_params` rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from executor.errors import PipelineError
from executor.pipeline.model import DEFAULT_PARAMS_FILE, ParamSpec


def merge_params(entries: Sequence[Any]) -> tuple[ParamSpec, ...]:
    """A stage's `params` list as DVC's `_merge_params` reads it.

    Plain strings are keys of `params.yaml` unless that file is wholly tracked; `{file: [keys]}`
    adds keys of `file`; `{file: null}` or `{file: []}` tracks the whole file and drops any
    specific keys given for it.
    """
    wholly: set[str] = set()
    for entry in entries:
        if isinstance(entry, Mapping):
            wholly.update(name for name, keys in entry.items() if not keys)
    merged: dict[str, list[str] | None] = {}
    for entry in entries:
        if isinstance(entry, str):
            if DEFAULT_PARAMS_FILE not in wholly:
                _add(merged, DEFAULT_PARAMS_FILE, [entry])
            continue
        if not isinstance(entry, Mapping):
            raise PipelineError(
                f"params entries must be strings or mappings, got {type(entry).__name__}"
            )
        for name, keys in entry.items():
            if not isinstance(name, str):
                raise PipelineError(f"params file names must be strings, got {type(name).__name__}")
            if name in wholly:
                merged[name] = None
            elif isinstance(keys, list) and all(isinstance(key, str) for key in keys):
                _add(merged, name, keys)
            else:
                raise PipelineError(f"expected a list of keys for params file '{name}'")
    return tuple(
        ParamSpec(name, None if keys is None else tuple(dict.fromkeys(keys)))
        for name, keys in merged.items()
    )


_merge_params = merge_params  # DVC's name, for readers coming from dvc/dependency/__init__.py


def _add(merged: dict[str, list[str] | None], name: str, keys: list[str]) -> None:
    current = merged.setdefault(name, [])
    assert current is not None  # wholly tracked files never reach here
    current.extend(keys)
