"""Every `dvc.yaml` of a repository, read into `Stage` records the way DVC 3 reads them."""

from __future__ import annotations

import os
from pathlib import Path

from executor.dvcformat import gitignore
from executor.errors import PipelineError
from executor.hashing import ignore as dvcignore
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
    outs: set[str] = set()
    for dvcfile in find_dvcfiles(root):
        # DVC does not walk into a folder that is an output of a stage it has collected.
        parts = dvcfile.split("/")[:-1]
        if any("/".join(parts[:i]) in outs for i in range(1, len(parts) + 1)):
            continue
        for stage in load_dvcfile(root, dvcfile, reader, guard):
            stages[stage.address] = stage
            outs.update(stage.repo_path(out.path) for out in stage.outs)
    pipeline = Pipeline(root=str(root), stages=stages)
    build_dag(pipeline)
    return pipeline


def find_dvcfiles(root: Path) -> list[str]:
    """Repo-relative paths of every dvc.yaml DVC collects, root first, then by directory.

    As DVC's `collect_files`: `.git`, `.hg`, `.dvc`, what `.dvcignore` files ignore and
    nested DVC repositories (a folder holding `.dvc`, as `dvc init --subdir` makes) are not
    searched, links to folders are not followed, and a dvc.yaml git ignores is not read.
    Hidden folders are searched only when git does not ignore them (one `git check-ignore`
    for all of them and all dvc.yaml files below the root), so a `.venv` costs nothing.
    """
    top = str(root)
    found: list[tuple[tuple[str, ...], str]] = []
    hidden: list[tuple[str, dvcignore.IgnoreRules | None]] = []  # not searched yet
    pending = [("", dvcignore.rules_in(top, "", None))]
    asked: set[str] = {DVCFILE}  # a git-ignored ./dvc.yaml is too odd to cost a git call
    while True:
        while pending:
            rel, rules = pending.pop()
            _scan(top, rel, rules, found, hidden, pending)
        question = [f"{rel}/" for rel, _ in hidden]
        question += [dvcfile for _, dvcfile in found if dvcfile not in asked]
        asked.update(question)
        ignored = gitignore.ignored_by_git(root, question) if question else set()
        found = [(key, dvcfile) for key, dvcfile in found if dvcfile not in ignored]
        pending = [(rel, rules) for rel, rules in hidden if f"{rel}/" not in ignored]
        hidden = []
        if not pending:
            break
    return [dvcfile for _, dvcfile in sorted(found)]


def _scan(
    top: str,
    rel: str,
    rules: dvcignore.IgnoreRules | None,
    found: list[tuple[tuple[str, ...], str]],
    hidden: list[tuple[str, dvcignore.IgnoreRules | None]],
    pending: list[tuple[str, dvcignore.IgnoreRules | None]],
) -> None:
    """One folder of the walk: its dvc.yaml, and its subfolders queued (hidden ones aside)."""
    folder = os.path.join(top, rel) if rel else top
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return  # DVC's os.walk skips folders it cannot list
    names = {entry.name for entry in entries}
    if rel and dvcignore.SUBREPO_MARK in names:
        return  # a nested DVC repository is a project of its own
    if rel and dvcignore.DVCIGNORE in names:
        rules = dvcignore.rules_in(top, rel, rules)
    for entry in entries:
        name = entry.name
        child = f"{rel}/{name}" if rel else name
        if name == DVCFILE:
            if entry.is_file() and not dvcignore.skipped(rules, child, False):
                parts = tuple(rel.split("/")) if rel else ()
                found.append((parts, child))
            continue
        if not entry.is_dir(follow_symlinks=False) or dvcignore.skipped(rules, child, True):
            continue
        if name.startswith("."):
            hidden.append((child, rules))
        else:
            pending.append((child, rules))


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
