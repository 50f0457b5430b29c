"""Params files and the `params` block of a dvc.lock entry, as DVC 3 builds them.

DVC reads `.json` with json, `.toml` as TOML and anything else as YAML 1.2 (ruamel safe), an
empty or false document counting as `{}` (`dvc/utils/serialize`). Dotted keys are looked up as
paths and stored flat (`prep.size: 10`), whole dicts nested, a wholly tracked file in full; the
default `params.yaml` comes first, then the other files by path, top-level keys sorted
(`dvc/stage/serialize.py: _serialize_params_values`).
"""

from __future__ import annotations

import json
import os
import posixpath
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executor.errors import PipelineError
from executor.pipeline import yamldoc
from executor.pipeline.model import DEFAULT_PARAMS_FILE, Stage
from executor.pipeline.model import repo_path as in_wdir
from executor.pipeline.paramlookup import lookup_param
from executor.pipeline.paramvalues import check_plain, same_values

_MISSING = object()


class ParamsReader:
    """Reads the params and vars files of one repository, parsing each file once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._documents: dict[str, Any] = {}
        self._checked: set[tuple[str, str]] = set()  # (file, key) already found plain
        self._str_keyed: dict[int, bool] = {}  # dicts of the documents above (kept alive)

    def exists(self, repo_path: str) -> bool:
        """Whether the repo-relative path names a file."""
        return (self.root / repo_path).is_file()

    def document(self, repo_path: str) -> Any:
        """The parsed file at a repo-relative path (`{}` for an empty one)."""
        if repo_path not in self._documents:
            self._documents[repo_path] = self._parse(repo_path)
        return self._documents[repo_path]

    def values(self, stage: Stage) -> dict[str, dict[str, Any]]:
        """The `params` block of `stage`'s lock entry. Values are shared: do not mutate them."""
        block: dict[str, dict[str, Any]] = {}
        for spec in sorted(stage.params, key=lambda spec: spec.file):
            repo_path = stage.repo_path(spec.file)
            try:
                picked = self._pick(repo_path, spec.keys)
            except PipelineError as exc:
                raise PipelineError(f"stage '{stage.address}': {exc}") from None
            except RecursionError:
                raise PipelineError(
                    f"stage '{stage.address}': {yamldoc.too_deep(repo_path)}"
                ) from None
            try:
                block[spec.file] = {key: picked[key] for key in sorted(picked)}
            except TypeError:
                raise PipelineError(
                    f"stage '{stage.address}': '{repo_path}' mixes string and other keys"
                ) from None
        if DEFAULT_PARAMS_FILE in block:
            block = {DEFAULT_PARAMS_FILE: block.pop(DEFAULT_PARAMS_FILE), **block}
        return block

    def differences(self, wdir: str, block: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """`file:key` of each value in a lock entry's `params` block (files relative to
        `wdir`) that these files do not hold."""
        wrong = []
        for name, values in block.items():
            repo_path = in_wdir(wdir, name)
            for key, value in values.items():
                try:
                    found = lookup_param(
                        self.document(repo_path), str(key), repo_path, self._str_keyed
                    )
                except PipelineError:
                    found = _MISSING
                if found is _MISSING or not same_values(found, value):
                    wrong.append(f"{name}:{key}")
        return wrong

    def typed(self, wdir: str, block: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """A `params` block that came through JSON (a job spec) with the files' values put
        back where they are the same: JSON makes a key `-2` the string `'-2'`, DVC locks
        it as the int. Values the files do not hold stay as they came."""
        typed: dict[str, dict[str, Any]] = {}
        for name, values in block.items():
            repo_path = in_wdir(wdir, name)
            try:
                document = self.document(repo_path)
            except PipelineError:
                document = _MISSING
            typed[name] = {}
            for key, value in values.items():
                try:
                    found = lookup_param(document, str(key), repo_path, self._str_keyed)
                except PipelineError:
                    found = _MISSING
                same = found is not _MISSING and same_values(found, value)
                typed[name][key] = found if same else value
        return typed

    def _pick(self, repo_path: str, keys: tuple[str, ...] | None) -> dict[Any, Any]:
        if not self.exists(repo_path):
            folder = posixpath.dirname(repo_path)
            if folder and not (self.root / folder).is_dir():
                raise PipelineError(
                    f"params file '{repo_path}' does not exist: there is no folder '{folder}'"
                    " (check the stage's wdir)"
                )
            raise PipelineError(f"params file '{repo_path}' does not exist")
        document = self.document(repo_path)
        if keys is None:
            if not isinstance(document, dict):
                raise PipelineError(f"params file '{repo_path}' is not a mapping")
            for key in document:
                if not isinstance(key, str):  # dvc.lock's schema: `expected str @ params`
                    raise PipelineError(
                        f"params file '{repo_path}' has a top-level key {key!r} that is not a "
                        "string; DVC refuses it when it tracks the whole file: quote it"
                    )
            picked = document
        else:
            picked = {key: lookup_param(document, key, repo_path, self._str_keyed) for key in keys}
        for key, value in picked.items():
            if (repo_path, key) not in self._checked:
                check_plain(value, f"{repo_path}:{key}")
                self._checked.add((repo_path, key))
        return picked

    def _parse(self, repo_path: str) -> Any:
        path = self.root / repo_path
        real = os.path.realpath(path)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise PipelineError(f"'{repo_path}' leads outside of the repository")
        if path.is_dir():
            raise PipelineError(f"'{repo_path}' is a directory, expected a params file")
        suffix = posixpath.splitext(repo_path)[1].lower()
        if suffix not in (".json", ".toml", ".py"):
            return yamldoc.read(path, repo_path).data or {}
        if suffix == ".py":
            raise PipelineError(f"'{repo_path}': Python params files are not supported")
        try:
            text = path.read_text(encoding="utf-8")
            if suffix == ".json":
                return json.loads(text) or {}
            return tomllib.loads(text) or {}
        except (ValueError, OSError) as exc:  # JSONDecodeError and TOMLDecodeError included
            raise PipelineError(f"unable to read '{repo_path}': {exc}") from None
        except RecursionError:
            raise yamldoc.too_deep(repo_path) from None


def params_values(root: Path, stage: Stage) -> dict[str, dict[str, Any]]:
    """The `params` block of `stage`'s dvc.lock entry (one-off; use ParamsReader for many)."""
    return ParamsReader(root).values(stage)
