"""`Stage` records from templated stage definitions, every path checked.

Outputs follow DVC's `output.load_from_pipeline`: `outs`, then `metrics`, then `plots`, and a
path listed twice in one of them is one output whose flags merge.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from executor.errors import PipelineError
from executor.pipeline.model import OutKind, OutSpec, Stage
from executor.pipeline.paramspecs import merge_params
from executor.pipeline.paths import PathGuard
from executor.pipeline.schema import PLOT_PROPS
from executor.pipeline.templating import Generated
from executor.pipeline.yamldoc import KeyPath, YamlDoc

T = TypeVar("T")

_KINDS: tuple[OutKind, ...] = ("outs", "metrics", "plots")
_ANNOTATIONS = ("desc", "type", "labels", "meta")


def build_stage(dvcfile: str, doc: YamlDoc, guard: PathGuard, generated: Generated) -> Stage:
    """The stage, or a PipelineError naming file, line, stage and field."""
    site = _Site(dvcfile, doc, generated.name, generated.origin)
    fields = generated.fields
    here = posixpath.dirname(dvcfile) or "."
    wdir = site.check(
        "wdir", None, guard.inside, here, site.text(fields.get("wdir") or ".", "wdir")
    )
    for index, dep in enumerate(fields.get("deps", [])):
        site.check("deps", index, guard.inside, wdir, site.text(dep, "deps", index))
    params = site.check("params", None, merge_params, fields.get("params", []))
    for spec in params:
        site.check("params", None, guard.inside, wdir, spec.file)
    outs = [out for kind in _KINDS for out in _outs(site, guard, wdir, kind, fields.get(kind, []))]
    desc = fields.get("desc")
    return Stage(
        name=generated.name,
        dvcfile=dvcfile,
        cmd=_cmd(site, fields.get("cmd")),
        wdir=wdir,
        deps=tuple(fields.get("deps", [])),
        params=params,
        outs=tuple(outs),
        frozen=fields.get("frozen", False),
        always_changed=fields.get("always_changed", False),
        desc=None if desc is None else site.text(desc, "desc"),
        meta=fields.get("meta"),
        line=doc.line(*generated.origin),
        group=generated.group,
    )


@dataclass(frozen=True)
class _Site:
    """Where a stage is defined, for messages."""

    dvcfile: str
    doc: YamlDoc
    name: str
    origin: KeyPath

    def text(self, value: Any, field: str, index: int | None = None) -> str:
        if not isinstance(value, str):
            self.fail(field, index, f"must be a string, got {_kind(value)}")
        return value

    def check(self, field: str, index: int | None, work: Callable[..., T], *args: Any) -> T:
        try:
            return work(*args)
        except PipelineError as exc:
            self.fail(field, index, str(exc))

    def fail(self, field: str, index: int | None, message: str) -> NoReturn:
        where = (*self.origin, field) if index is None else (*self.origin, field, index)
        label = field if index is None else f"{field}[{index}]"
        line = self.doc.line(*where)
        raise PipelineError(
            f"stage '{self.name}': {label}: {message}", path=self.dvcfile, line=line
        )


def _cmd(site: _Site, cmd: Any) -> str | tuple[str, ...]:
    if isinstance(cmd, str):
        lines: tuple[str, ...] = (cmd,)
    elif isinstance(cmd, list) and all(isinstance(line, str) for line in cmd):
        lines = tuple(cmd)
    else:
        site.fail("cmd", None, f"must be a string or a list of strings, got {_kind(cmd)}")
    if not "".join(lines).strip():
        site.fail("cmd", None, "is empty")
    for line in lines:
        if "\0" in line:
            site.fail("cmd", None, f"contains a NUL byte: {line!r}")
    return cmd if isinstance(cmd, str) else lines


def _outs(site: _Site, guard: PathGuard, wdir: str, kind: OutKind, items: Any) -> list[OutSpec]:
    merged: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        entries = item if isinstance(item, dict) else {site.text(item, kind, index): {}}
        for path, flags in entries.items():
            site.check(kind, index, guard.inside, wdir, site.text(path, kind, index))
            merged.setdefault(path, {}).update(flags)
    return [_out(path, kind, flags) for path, flags in merged.items()]


def _out(path: str, kind: OutKind, flags: Mapping[str, Any]) -> OutSpec:
    props = PLOT_PROPS if kind == "plots" else {}
    return OutSpec(
        path=path,
        kind=kind,
        cache=flags.get("cache", True),
        persist=flags.get("persist", False),
        push=flags.get("push", True),
        remote=flags.get("remote"),
        annotations={key: flags[key] for key in _ANNOTATIONS if key in flags},
        plot_props={key: flags[key] for key in props if key in flags},
    )


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null"}.get(
        type(value), type(value).__name__
    )
