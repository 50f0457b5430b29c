"""Every `dvc.yaml` of a repository, read into `Stage` records the way DVC 3 reads them."""

from __future__ import annotations

import os
from pathlib import Path

from executor.errors import PipelineError
from executor.pipeline import yamldoc
from executor.pipeline.dag import build_dag
from executor.pipeline.model import Pipeline, Stage
from executor.pipeline.params import ParamsReader
from executor.pipeline.paths import PathGuard
from executor.pipeline.schema import Validator
from executor.pipeline.stages import build_stage
from executor.pipeline.templating import Expander

DVCFILE = "dvc.yaml"


def load_pipeline(root: Path, reader: ParamsReader | None = None) -> Pipeline:
    """All stages of the repository at `root`, by address, in definition order.

    Files come sorted by directory (the root `dvc.yaml` first), stages in file order with
    `foreach`/`matrix` expanded in place. Everything is validated, the stage graph included
    (cycles, overlapping outputs). Pass a `reader` to share parsed params files with
    `ParamsReader.values` later.
    """
    root = Path(root)
    reader = reader or ParamsReader(root)
    guard = PathGuard(root)
    stages: dict[str, Stage] = {}
    for dvcfile in find_dvcfiles(root):
        for stage in load_dvcfile(root, dvcfile, reader, guard):
            stages[stage.address] = stage
    pipeline = Pipeline(root=str(root), stages=stages)
    build_dag(pipeline)
    return pipeline


def find_dvcfiles(root: Path) -> list[str]:
    """Repo-relative paths of every dvc.yaml, root first, then by directory.

    Hidden directories (`.git`, `.dvc`, `.hg`, `.venv`, ...) are not searched.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        if DVCFILE in filenames and os.path.isfile(os.path.join(dirpath, DVCFILE)):
            rel = Path(dirpath).relative_to(root).as_posix()
            parts = () if rel == "." else tuple(rel.split("/"))
            found.append((parts, "/".join((*parts, DVCFILE))))
    return [dvcfile for _, dvcfile in sorted(found)]


def load_dvcfile(
    root: Path, dvcfile: str, reader: ParamsReader, guard: PathGuard | None = None
) -> list[Stage]:
    """The stages of one dvc.yaml (repo-relative path), validated and expanded."""
    try:
        return _load_dvcfile(root, dvcfile, reader, guard)
    except RecursionError:  # a document nested deeper than the checks can walk
        raise yamldoc.too_deep(dvcfile) from None


def _load_dvcfile(
    root: Path, dvcfile: str, reader: ParamsReader, guard: PathGuard | None
) -> list[Stage]:
    doc = yamldoc.read(root / dvcfile, dvcfile, lines=True)
    if not doc.data:  # DVC reads an empty file as {}
        doc = yamldoc.YamlDoc({}, doc.lines)
    Validator(dvcfile, doc).document()
    expander = Expander(dvcfile, doc, reader)
    guard = guard or PathGuard(root)
    stages: dict[str, Stage] = {}
    for name, definition in doc.data.get("stages", {}).items():
        for generated in expander.expand(name, definition):
            if generated.name in stages:
                message = f"duplicate stage name '{generated.name}'"
                raise PipelineError(message, path=dvcfile, line=doc.line("stages", name))
            stages[generated.name] = build_stage(dvcfile, doc, guard, generated)
    return list(stages.values())
