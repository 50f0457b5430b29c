"""The shape of a dvc.yaml before templating, as DVC 3's `dvc/schema.py` accepts it.

Checked on the document as written, like DVC does: `${...}` can only stand where a string is
allowed (`deps: ${list}` is as wrong for DVC as `deps: 3`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from executor.errors import PipelineError
from executor.pipeline import interpolation
from executor.pipeline.yamldoc import KeyPath, YamlDoc

TOP_LEVEL = frozenset({"stages", "vars", "params", "metrics", "plots", "artifacts", "datasets"})
OUT_FLAGS: Mapping[str, type | tuple[type, ...]] = {
    "cache": bool,
    "persist": bool,
    "checkpoint": bool,
    "remote": str,
    "push": bool,
    "desc": str,
    "type": str,
    "labels": list,
    "meta": object,
}
PLOT_PROPS: Mapping[str, type | tuple[type, ...]] = {
    "template": str,
    "x": str,
    "y": str,
    "x_label": str,
    "y_label": str,
    "title": str,
    "header": bool,
}
_SIMPLE: Mapping[str, type | tuple[type, ...]] = {
    "cmd": (str, list),
    "wdir": str,
    "frozen": bool,
    "always_changed": bool,
    "desc": str,
    "meta": object,
}
_LISTS = ("deps", "params", "outs", "metrics", "plots", "vars")
STAGE_FIELDS = frozenset({*_SIMPLE, *_LISTS, "matrix"})


class Validator:
    """Checks one parsed dvc.yaml; errors carry the file and the line."""

    def __init__(self, dvcfile: str, doc: YamlDoc) -> None:
        self.dvcfile = dvcfile
        self.doc = doc

    def document(self) -> None:
        """Check the top level and every stage definition."""
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail(f"expected a mapping at the top level, got {_kind(data)}", ())
        for key in data:
            if key not in TOP_LEVEL:
                self.fail(f"unknown top-level key '{key}'", (key,))
        if "vars" in data:
            self.vars(data["vars"], ("vars",), "vars")
        for key in ("params", "metrics"):
            if key in data:
                self.str_list(data[key], (key,), key)
        if "plots" in data:
            self.typed_list(data["plots"], ("plots",), "plots", (str, dict), "paths or mappings")
        stages = data.get("stages", {})
        if not isinstance(stages, dict):
            self.fail(f"'stages' must be a mapping, got {_kind(stages)}", ("stages",))
        for name, definition in stages.items():
            self.stage(name, definition)

    def stage(self, name: Any, definition: Any) -> None:
        where: KeyPath = ("stages", name)
        if not isinstance(name, str) or not name:
            self.fail(f"stage names must be non-empty strings, got {name!r}", where)
        if "@" in name:  # DVC reads `a@b` as item `b` of a foreach `a`, and finds no such stage
            self.fail(
                f"stage name '{name}' must not contain '@' (DVC reserves it for foreach "
                "and matrix items): rename the stage",
                where,
            )
        if not isinstance(definition, dict):
            self.fail(f"stage '{name}' must be a mapping, got {_kind(definition)}", where)
        if "foreach" in definition or "do" in definition:
            for key in definition:
                if key not in ("foreach", "do"):
                    message = f"stage '{name}': '{key}' is not allowed beside foreach"
                    self.fail(message, (*where, key))
            for key in ("foreach", "do"):
                if key not in definition:
                    self.fail(f"stage '{name}': foreach needs '{key}'", where)
            if not isinstance(definition["foreach"], (dict, list, str)):
                label = f"stage '{name}': 'foreach' must be a list, mapping or ${{...}}"
                self.fail(label, (*where, "foreach"))
            where = (*where, "do")
            definition = definition["do"]
            if not isinstance(definition, dict):
                self.fail(f"stage '{name}': 'do' must be a mapping", where)
        self.fields(name, definition, where)

    def fields(self, name: str, definition: Mapping[Any, Any], where: KeyPath) -> None:
        for key, value in definition.items():
            at = (*where, key)
            if key not in STAGE_FIELDS:
                self.fail(f"stage '{name}': unknown field '{key}'", at)
            label = f"stage '{name}': '{key}'"
            if key in _SIMPLE:
                expected = _SIMPLE[key]
                if not isinstance(value, expected):
                    self.fail(f"{label} must be {_describe(expected)}, got {_kind(value)}", at)
            elif key == "deps":
                self.str_list(value, at, label)
            elif key == "params":
                self.typed_list(value, at, label, (str, dict), "strings or mappings")
            elif key in ("outs", "metrics", "plots"):
                self.outs(value, at, label, PLOT_PROPS if key == "plots" else {})
            elif key == "vars":
                self.vars(value, at, label)
            elif key == "matrix":
                self.matrix(value, at, label)
        if "cmd" not in definition:
            self.fail(f"stage '{name}': 'cmd' is required", where)

    def outs(self, value: Any, at: KeyPath, label: str, extra: Mapping[str, Any]) -> None:
        self.typed_list(value, at, label, (str, dict), "paths or {path: flags} mappings")
        allowed = {**OUT_FLAGS, **extra}
        for index, item in enumerate(value):
            if isinstance(item, str):
                continue
            for path, flags in item.items():
                here = (*at, index, path)
                if not isinstance(path, str):
                    self.fail(f"{label}: paths must be strings, got {_kind(path)}", here)
                if not isinstance(flags, dict):
                    self.fail(f"{label}: flags of '{path}' must be a mapping", here)
                for flag, setting in flags.items():
                    kind = allowed.get(flag)
                    if kind is None:
                        self.fail(f"{label}: unknown flag '{flag}' for '{path}'", (*here, flag))
                    if not isinstance(setting, kind):
                        message = f"{label}: '{flag}' of '{path}' must be {_describe(kind)}"
                        self.fail(message, (*here, flag))
                    if flag == "labels" and not all(isinstance(x, str) for x in setting):
                        self.fail(f"{label}: 'labels' of '{path}' must be strings", (*here, flag))

    def vars(self, value: Any, at: KeyPath, label: str) -> None:
        self.typed_list(value, at, label, (str, dict), "file names or mappings")
        for index, item in enumerate(value):
            for text in _strings(item):
                if interpolation.has_expressions(text):
                    self.fail(f"{label}: interpolating is not allowed", (*at, index))

    def matrix(self, value: Any, at: KeyPath, label: str) -> None:
        if not isinstance(value, dict) or not value:
            self.fail(f"{label} must be a non-empty mapping of lists", at)
        for axis, options in value.items():
            if not isinstance(axis, str) or not isinstance(options, (str, list)):
                self.fail(f"{label}: '{axis}' must be a list or ${{...}}", (*at, axis))

    def str_list(self, value: Any, at: KeyPath, label: str) -> None:
        self.typed_list(value, at, label, (str,), "strings")

    def typed_list(
        self, value: Any, at: KeyPath, label: str, kinds: tuple[type, ...], what: str
    ) -> None:
        if not isinstance(value, list):
            self.fail(f"{label} must be a list of {what}, got {_kind(value)}", at)
        for index, item in enumerate(value):
            if not isinstance(item, kinds):
                self.fail(f"{label} must be a list of {what}, got {_kind(item)}", (*at, index))

    def fail(self, message: str, where: KeyPath) -> NoReturn:
        raise PipelineError(message, path=self.dvcfile, line=self.doc.line(*where))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for pair in value.items() for item in pair for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _describe(kind: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", str: "a string", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(item, item.__name__) for item in kinds)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null"}.get(
        type(value), type(value).__name__
    )
