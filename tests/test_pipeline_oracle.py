"""Shared helpers for the pipeline tests: write a repository, ask DVC (in-process) about it."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executor.pipeline import Pipeline


def write(root: Path, files: Mapping[str, str]) -> Path:
    """Write dedented files under `root` (created) and return it."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return root


def dvc_repo(root: Path, files: Mapping[str, str]) -> Path:
    """A DVC repository (no git) holding `files`."""
    from dvc.repo import Repo

    write(root, files)
    Repo.init(str(root), no_scm=True).close()
    return root


def dvc_view(root: Path) -> dict[str, dict[str, Any]]:
    """What DVC itself makes of every stage: the oracle."""
    from dvc.dependency import ParamsDependency
    from dvc.repo import Repo

    view: dict[str, dict[str, Any]] = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            dvcfile = Path(stage.path).relative_to(root).as_posix()
            address = stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"
            params = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
            view[address] = {
                "cmd": stage.cmd,
                "wdir": Path(stage.wdir).relative_to(root).as_posix(),
                "deps": [dep.def_path for dep in stage.deps if dep not in params],
                "params": {dep.def_path: list(dep.params) or None for dep in params},
                "outs": [
                    (out.def_path, _kind(out), out.use_cache, out.persist) for out in stage.outs
                ],
                "frozen": stage.frozen,
                "desc": stage.desc,
                "meta": stage.meta,
            }
    return view


def our_view(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """The same view of executor's pipeline."""
    return {
        address: {
            "cmd": stage.lock_cmd,
            "wdir": stage.wdir,
            "deps": list(stage.deps),
            "params": {
                spec.file: None if spec.keys is None else list(spec.keys) for spec in stage.params
            },
            "outs": [(out.path, out.kind, out.cache, out.persist) for out in stage.outs],
            "frozen": stage.frozen,
            "desc": stage.desc,
            "meta": stage.meta,
        }
        for address, stage in pipeline.stages.items()
    }


def dvc_error(root: Path) -> str | None:
    """DVC's error loading the pipeline (None if it loads)."""
    try:
        dvc_view(root)
    except Exception as exc:  # any DVC failure counts
        return f"{type(exc).__name__}: {exc}"
    return None


def _kind(out: Any) -> str:
    if out.plot:
        return "plots"
    return "metrics" if out.metric else "outs"
