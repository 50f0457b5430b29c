"""The pipeline as DVC sees it: stages after templating, with paths as written."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

OutKind = Literal["outs", "metrics", "plots"]

DEFAULT_PARAMS_FILE = "params.yaml"


def repo_path(wdir: str, path: str) -> str:
    """A path relative to a stage's `wdir` as a normalised repo-relative posix path."""
    return posixpath.normpath(posixpath.join(wdir, path))


@dataclass(frozen=True)
class OutSpec:
    """One output of a stage; `path` is verbatim from dvc.yaml, relative to `wdir`."""

    path: str
    kind: OutKind = "outs"
    cache: bool = True
    persist: bool = False
    push: bool = True
    remote: str | None = None
    # desc/type/labels/meta and plot template/x/y/...: kept as written, never hashed
    annotations: Mapping[str, Any] = field(default_factory=dict, hash=False)
    plot_props: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ParamSpec:
    """Params tracked from one file (relative to `wdir`); `keys` is None for the whole file."""

    file: str
    keys: tuple[str, ...] | None


@dataclass(frozen=True)
class Stage:
    """One stage after `${}` interpolation, `foreach` and `matrix` expansion."""

    name: str  # as DVC names it: "train", "train@1", "train@a-b"
    dvcfile: str  # repo-relative posix path of its dvc.yaml ("dvc.yaml", "sub/dvc.yaml")
    cmd: str | tuple[str, ...]  # verbatim: a string (split into lines) or a list
    wdir: str = "."  # repo-relative posix path of the working directory
    deps: tuple[str, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    outs: tuple[OutSpec, ...] = ()
    frozen: bool = False
    always_changed: bool = False
    desc: str | None = None
    meta: Any = None
    line: int | None = None  # where the stage is defined in its dvc.yaml, for messages
    extra: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None  # the foreach/matrix definition that generated it ("train")

    @property
    def lines(self) -> tuple[str, ...]:
        """The command lines, each run as its own shell process (DVC's `_enforce_cmd_list`)."""
        if isinstance(self.cmd, str):
            return tuple(self.cmd.splitlines())
        return self.cmd

    @property
    def lock_cmd(self) -> str | list[str]:
        """`cmd` as dvc.lock records it."""
        return self.cmd if isinstance(self.cmd, str) else list(self.cmd)

    @property
    def address(self) -> str:
        """`name` for the root dvc.yaml, `path/dvc.yaml:name` otherwise."""
        if self.dvcfile == "dvc.yaml":
            return self.name
        return f"{self.dvcfile}:{self.name}"

    @property
    def lockfile(self) -> str:
        """Repo-relative path of the dvc.lock that records this stage."""
        stem = self.dvcfile[: -len(".yaml")] if self.dvcfile.endswith(".yaml") else self.dvcfile
        return f"{stem}.lock"

    @property
    def dep_paths(self) -> tuple[str, ...]:
        """Repo-relative paths of the deps, then of the params files (DVC counts both)."""
        deps = (self.repo_path(dep) for dep in self.deps)
        return (*deps, *(self.repo_path(spec.file) for spec in self.params))

    def repo_path(self, path: str) -> str:
        """A dep/out path (relative to wdir) as a normalised repo-relative posix path."""
        return repo_path(self.wdir, path)

    @property
    def executor_meta(self) -> Mapping[str, Any]:
        """The `meta: {executor: {...}}` block (image, limits, network, gpus), or {}."""
        if isinstance(self.meta, Mapping):
            block = self.meta.get("executor")
            if isinstance(block, Mapping):
                return block
        return {}

    @property
    def cacheable(self) -> bool:
        """Whether DVC would save a run-cache entry for this stage."""
        if self.always_changed:
            return False
        outs = ((out.kind, out.cache, out.persist) for out in self.outs)
        return run_cacheable(bool(self.deps or self.params), outs)


def run_cacheable(has_inputs: bool, outs: Iterable[tuple[str, bool, bool]]) -> bool:
    """DVC's rule for a run-cache entry, on (kind, cache, persist) of each output: deps or
    params, outputs, every `outs` output cached, none persisted. A fleet worker applies it
    to the job it was given, so the submitter's word is not what decides."""
    found = list(outs)
    if not has_inputs or not found:
        return False
    return all(cache or kind != "outs" for kind, cache, _ in found) and not any(
        persist for _, _, persist in found
    )


@dataclass(frozen=True)
class Pipeline:
    """Every stage of a repository, keyed by address, in definition order."""

    root: str  # absolute path of the repository
    stages: Mapping[str, Stage]
