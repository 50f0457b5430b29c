"""The outputs a repository records with hashes: its dvc.lock files (and `.dvc` files), the
set `dvc push` and `dvc pull` move."""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from executor import yamlio
from executor.dvcformat.lockfile import read_lock
from executor.errors import PipelineError, UserError

log = logging.getLogger(__name__)
SKIP_DIRS = frozenset({".git", ".dvc", ".hg"})


@dataclass(frozen=True)
class Tracked:
    """One output and the object its content is: `path` is repo-relative posix."""

    path: str
    md5: str
    isexec: bool = False
    push: bool = True  # False for `cache: false` and `push: false` outs, which DVC leaves out
    file: str = ""  # the dvc.lock or .dvc file recording it, repo-relative
    stage: str = ""  # the stage name within a dvc.lock
    remote: str = ""  # the DVC remote its `remote:` field names ("": the default one)
    cache: bool = True  # False for `cache: false` outs: never checked out, as DVC leaves them
    only: str = ""  # a target inside a directory output: just this part of it (relative)
    legacy: bool = False  # a DVC 2.x hash (md5-dos2unix): objects in the 2.x layout

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


def tracked_outputs(
    root: Path, targets: Sequence[str] = (), cwd: Path | None = None
) -> list[Tracked]:
    """Every output with a hash in the repository's dvc.lock and .dvc files, or those of
    `targets`: a stage (`name`, `dir/dvc.yaml:name`), a dvc.yaml/dvc.lock/.dvc file, or an
    output path (relative to `cwd`)."""
    found = _walk(root)
    if not targets:
        return found
    chosen: dict[tuple[str, str], Tracked] = {}
    for target in targets:
        matched = [t for t in found if _matches(t, target, root, cwd or root)]
        if not matched:
            raise UserError(f"'{target}' names no stage, dvc file or tracked output with a hash")
        for t in matched:
            key = (t.file, t.path)
            part = _part_of(t, target, root, cwd or root)
            if key in chosen and (not part or not chosen[key].only):
                part = ""  # the whole output was asked for too
            elif key in chosen:
                part = _common(chosen[key].only, part)
            chosen[key] = replace(t, only=part)
    return list(chosen.values())


def _part_of(t: Tracked, target: str, root: Path, cwd: Path) -> str:
    """The path inside a directory output that `target` names, as `dvc pull dir/sub/file`
    checks out only that part ("" for the whole output)."""
    if ":" in target or not t.is_dir:
        return ""
    rel = _repo_rel(target, root, cwd)
    return rel[len(t.path) + 1 :] if rel.startswith(t.path + "/") else ""


def _common(a: str, b: str) -> str:
    """The deepest folder holding both parts ("" for the whole output)."""
    shared = []
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y:
            break
        shared.append(x)
    return "/".join(shared)


def _walk(root: Path) -> list[Tracked]:
    """Read every dvc.lock and .dvc file, top down, never descending into an output folder
    (one may hold thousands of files and no dvc file)."""
    found: list[Tracked] = []
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        base = "" if rel == "." else f"{rel}/"
        for name in sorted(names):
            if name == "dvc.lock":
                found += _read_lock(root, base + name)
            elif name.endswith(".dvc") and name != ".dvc":
                found += _read_dvcfile(root, base + name)
        outs = {t.path for t in found}
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and base + d not in outs)
    return found


def _read_lock(root: Path, lockfile: str) -> list[Tracked]:
    entries = read_lock(root, lockfile)
    dvcfile = lockfile[: -len(".lock")] + ".yaml"
    defs = _stage_defs(root, dvcfile)
    base = posixpath.dirname(lockfile)
    found = []
    for name, entry in entries.items():
        stage = defs.get(str(name)) or defs.get(str(name).partition("@")[0]) or {}
        wdir = str(stage.get("wdir") or ".")
        if "${" in wdir:
            raise PipelineError(f"stage '{name}': a templated wdir is not supported by push/pull")
        flags = _out_flags(stage)
        for item in entry.get("outs", []):
            path = str(item["path"])
            flag = flags.get(path, {})
            cache = bool(flag.get("cache", True))
            push = cache and bool(flag.get("push", True))
            full = _join(base, wdir, path)
            found += _item(item, full, lockfile, str(name), push, flag.get("remote"), cache)
    return found


def _read_dvcfile(root: Path, dvcfile: str) -> list[Tracked]:
    data = yamlio.load_file(root / dvcfile, dvcfile) or {}
    if not isinstance(data, Mapping):
        raise PipelineError("not a .dvc file (expected `outs`)", path=dvcfile)
    found = []
    for item in data.get("outs") or []:
        cache = bool(item.get("cache", True))
        push = cache and bool(item.get("push", True))
        full = _join(posixpath.dirname(dvcfile), ".", str(item["path"]))
        found += _item(item, full, dvcfile, "", push, item.get("remote"), cache)
    return found


def _item(
    item: Mapping[str, Any],
    path: str,
    file: str,
    stage: str,
    push: bool,
    remote: Any,
    cache: bool = True,
) -> list[Tracked]:
    if "md5" not in item:
        return []
    legacy = "hash" not in item  # written by DVC 2.x: md5-dos2unix
    if not legacy and item["hash"] != "md5":
        log.warning("%s: '%s' has a hash executor does not know; skipped", file, path)
        return []
    isexec = bool(item.get("isexec", False))
    where = str(remote or "")
    return [Tracked(path, str(item["md5"]), isexec, push, file, stage, where, cache, "", legacy)]


def _stage_defs(root: Path, dvcfile: str) -> dict[str, Mapping[str, Any]]:
    try:
        data = yamlio.load_file(root / dvcfile, dvcfile) or {}
    except FileNotFoundError:
        return {}
    stages = data.get("stages") if isinstance(data, Mapping) else None
    return {str(k): v for k, v in (stages or {}).items() if isinstance(v, Mapping)}


def _out_flags(stage: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    flags: dict[str, Mapping[str, Any]] = {}
    for kind in ("outs", "metrics", "plots"):
        for out in stage.get(kind) or []:
            if isinstance(out, Mapping):
                for path, value in out.items():
                    flags[str(path)] = value if isinstance(value, Mapping) else {}
    return flags


def _join(base: str, wdir: str, path: str) -> str:
    full = posixpath.normpath(posixpath.join(base, wdir, path))
    if full == ".." or full.startswith("../") or posixpath.isabs(full):
        raise PipelineError(f"output '{path}' is outside the repository")
    return full


def _matches(t: Tracked, target: str, root: Path, cwd: Path) -> bool:
    file, sep, stage = target.rpartition(":")
    if sep:
        lock = posixpath.normpath(_repo_rel(file, root, cwd))
        lock = lock[: -len(".yaml")] + ".lock" if lock.endswith(".yaml") else lock
        return t.file == lock and t.stage == stage
    rel = _repo_rel(target, root, cwd)
    if rel.endswith((".dvc", "dvc.lock", "dvc.yaml")):
        return t.file == (rel[: -len(".yaml")] + ".lock" if rel.endswith(".yaml") else rel)
    if t.file == "dvc.lock" and t.stage == target:
        return True
    return rel in (".", t.path) or t.path.startswith(rel + "/") or rel.startswith(t.path + "/")


def _repo_rel(path: str, root: Path, cwd: Path) -> str:
    full = os.path.normpath(os.path.join(cwd, path))
    return Path(os.path.relpath(full, root)).as_posix()
