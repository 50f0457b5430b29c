"""What the coordinator asks a worker to do for one stage.

The spec crosses a process boundary as JSON (never pickle): `from_dict` validates every
field, because whoever can write to the queue must not be able to make a worker do more.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.errors import InvalidJobSpec
from executor.jobfields import (
    escapes_root,
    is_string_list,
    list_field,
    mapping_field,
    string_field,
    workspace_relative,
)
from executor.pipeline.model import repo_path as in_wdir
from executor.pipeline.model import run_cacheable

OUT_KINDS = ("outs", "metrics", "plots")


@dataclass(frozen=True)
class OutRequest:
    """An output the job must produce; `path` relative to wdir as written in dvc.yaml."""

    path: str
    repo_path: str  # normalised, relative to the workspace root
    committed: bool  # its content goes into the store
    persist: bool = False
    cached: bool = True  # False for `cache: false`: stored for the run-cache at most, never a link
    kind: str = "outs"  # or metrics, plots: DVC's run-cache rule tells them apart


@dataclass(frozen=True)
class Input:
    """A file or directory a worker must place in its workspace: `path` relative to the
    workspace root (posix), `md5` its object (`.dir` for a directory)."""

    path: str
    md5: str
    isexec: bool = False
    executables: tuple[str, ...] = ()  # a directory's files with an exec bit (relpaths)
    folders: tuple[str, ...] = ()  # its empty folders (relpaths), which manifests lack


@dataclass(frozen=True)
class JobSpec:
    """One stage run, fully resolved: the worker needs nothing else from the repository."""

    address: str  # "train" or "sub/dvc.yaml:train"
    dvc_stage: str  # DVC_STAGE as DVC would set it
    cmd: str | list[str]
    lines: tuple[str, ...]
    image: str
    wdir: str  # relative to the workspace root, posix
    deps: tuple[Mapping[str, Any], ...]  # lock items, paths relative to wdir
    params: Mapping[str, Mapping[str, Any]]
    outs: tuple[OutRequest, ...]
    cacheable: bool  # the submitter says DVC would write a run-cache entry (see run_cacheable)
    commit: bool = True  # False for --no-commit
    executor_meta: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    # Files a fleet worker places in its workspace before the run: deps, params files and
    # persist outputs, by content. Empty for `executor run` (the repository is the workspace).
    inputs: tuple[Input, ...] = ()

    def input_paths(self) -> list[str]:
        """Every workspace path a worker may be given before the run (those that exist are
        sent): deps, params files, persist outputs (changed in place by the command) and
        the `.dvcignore` files that decide what deps and outputs hold when hashed."""
        rels = [str(d["path"]) for d in self.deps] + list(self.params)
        paths = [in_wdir(self.wdir, r) for r in rels]
        paths += [o.repo_path for o in self.outs if o.persist]
        folders = {posixpath.dirname(p) for p in [*paths, *(o.repo_path for o in self.outs)]}
        paths += sorted({ignore for folder in folders for ignore in _ignore_files(folder)})
        return list(dict.fromkeys(paths))

    def layout(self) -> str:
        """A digest of what this job gives its stage beyond DVC's run-cache key: `wdir`,
        `DVC_STAGE`, its limits, and every input by content with its exec bits and empty
        folders (a params file's other keys, a `.dvcignore`). A worker records it with its run; a
        lookup accepts that run only for a job that would be given the same."""
        inputs = sorted(
            [i.path, i.md5, i.isexec, sorted(i.executables), sorted(i.folders)] for i in self.inputs
        )
        doc = {
            "wdir": self.wdir,
            "stage": self.dvc_stage,
            "inputs": inputs,
            "meta": dict(self.executor_meta),  # limits: a stage may tell them apart
        }
        text = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def run_cacheable(self) -> bool:
        """Whether this run may make a run-cache entry: the submitter must say so, and DVC's
        rule must say so on the outputs as the job names them (a persist or `cache: false`
        output never makes one), whatever the submitter said."""
        outs = ((o.kind, o.cached, o.persist) for o in self.outs)
        return self.cacheable and run_cacheable(bool(self.deps or self.params), outs)

    def cmd_lines(self) -> tuple[str, ...]:
        """The lines `cmd` runs as, by DVC's rule (a string is split into its lines)."""
        return tuple(self.cmd.splitlines()) if isinstance(self.cmd, str) else tuple(self.cmd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "dvc_stage": self.dvc_stage,
            "cmd": self.cmd,
            "lines": list(self.lines),
            "image": self.image,
            "wdir": self.wdir,
            "deps": [dict(d) for d in self.deps],
            "params": {k: dict(v) for k, v in self.params.items()},
            "outs": [
                {
                    "path": o.path,
                    "repo_path": o.repo_path,
                    "committed": o.committed,
                    "persist": o.persist,
                    "cached": o.cached,
                    "kind": o.kind,
                }
                for o in self.outs
            ],
            "cacheable": self.cacheable,
            "commit": self.commit,
            "executor_meta": dict(self.executor_meta),
            "env": dict(self.env),
            "inputs": [
                {
                    "path": i.path,
                    "md5": i.md5,
                    "isexec": i.isexec,
                    "executables": list(i.executables),
                    "folders": list(i.folders),
                }
                for i in self.inputs
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobSpec:
        """Validate every field of a JSON job spec (InvalidJobSpec names the first bad one)."""
        if not isinstance(d, Mapping):
            raise InvalidJobSpec("job spec must be a JSON object")
        cmd = d.get("cmd")
        if not (isinstance(cmd, str) or is_string_list(cmd)):
            raise InvalidJobSpec("job spec field 'cmd' must be a string or a list of strings")
        lines = d.get("lines")
        if not is_string_list(lines) or any("\x00" in line for line in lines):
            raise InvalidJobSpec("job spec field 'lines' must be a list of strings without NUL")
        env = mapping_field(d, "env")
        if not all(isinstance(v, str) for v in env.values()):
            raise InvalidJobSpec("job spec field 'env' must map strings to strings")
        params = mapping_field(d, "params")
        if not all(isinstance(v, Mapping) for v in params.values()):
            raise InvalidJobSpec("job spec field 'params' must map files to mappings")
        wdir = workspace_relative(string_field(d, "wdir"), "wdir")
        return cls(
            address=string_field(d, "address"),
            dvc_stage=string_field(d, "dvc_stage"),
            cmd=cmd,
            lines=tuple(lines),
            image=string_field(d, "image"),
            wdir=wdir,
            deps=tuple(_dep(x) for x in list_field(d, "deps")),
            params={k: dict(v) for k, v in params.items()},
            outs=tuple(_out(o, wdir) for o in list_field(d, "outs")),
            cacheable=bool(d.get("cacheable", False)),
            commit=bool(d.get("commit", True)),
            executor_meta=mapping_field(d, "executor_meta"),
            env=env,
            inputs=tuple(_input(i) for i in list_field(d, "inputs")),
        )


def _ignore_files(folder: str) -> list[str]:
    """The `.dvcignore` paths that can apply inside `folder`: its own and its parents'."""
    found = []
    while True:
        found.append(posixpath.join(folder, ".dvcignore") if folder else ".dvcignore")
        if not folder:
            return found
        folder = posixpath.dirname(folder)


def _dep(item: object) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidJobSpec("job spec field 'deps' must hold mappings")
    path = string_field(item, "path")  # relative to wdir: `../x` may stay inside the workspace
    if path.startswith("/") or "\x00" in path:
        raise InvalidJobSpec(f"job spec field 'deps.path' is not a relative path: {path!r}")
    string_field(item, "md5")
    return dict(item)


def _input(item: object) -> Input:
    if not isinstance(item, Mapping):
        raise InvalidJobSpec("job spec field 'inputs' must hold mappings")
    md5 = string_field(item, "md5")
    digits = md5.removesuffix(".dir")
    if len(digits) != 32 or any(c not in "0123456789abcdef" for c in digits):
        raise InvalidJobSpec(f"job spec field 'inputs.md5' is not an md5: {md5!r}")
    path = workspace_relative(string_field(item, "path"), "inputs.path")
    if path in ("", "."):
        raise InvalidJobSpec("job spec field 'inputs.path' names the workspace itself")
    lists = {name: item.get(name) or [] for name in ("executables", "folders")}
    for name, rels in lists.items():
        if not is_string_list(rels) or not all(
            r and not r.startswith("/") and not escapes_root(r.split("/")) for r in rels
        ):
            raise InvalidJobSpec(f"job spec field 'inputs.{name}' must list relative paths")
    isexec = bool(item.get("isexec", False))
    return Input(path, md5, isexec, tuple(lists["executables"]), tuple(lists["folders"]))


def _out(item: object, wdir: str) -> OutRequest:
    if not isinstance(item, Mapping):
        raise InvalidJobSpec("job spec field 'outs' must hold mappings")
    path = string_field(item, "path")
    if path.startswith("/") or "\x00" in path:
        raise InvalidJobSpec(f"job spec field 'outs.path' is not a relative path: {path!r}")
    repo_path = workspace_relative(string_field(item, "repo_path"), "outs.repo_path")
    # What the worker hashes is what the entry names: never a path of the sender's choosing.
    if repo_path != in_wdir(wdir, path):
        raise InvalidJobSpec(
            f"job spec field 'outs.repo_path' {repo_path!r} is not the output {path!r} "
            f"in wdir {wdir!r}"
        )
    kind = item.get("kind", "outs")
    if kind not in OUT_KINDS:
        raise InvalidJobSpec(f"job spec field 'outs.kind' must be one of {', '.join(OUT_KINDS)}")
    return OutRequest(
        path=path,
        repo_path=repo_path,
        committed=bool(item.get("committed", True)),
        persist=bool(item.get("persist", False)),
        cached=bool(item.get("cached", True)),
        kind=str(kind),
    )
