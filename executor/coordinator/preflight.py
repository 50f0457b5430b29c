"""Checks before anything changes, and the data sources `dvc repro` verifies first."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable

from executor.confine import inside
from executor.coordinator.lockqueue import LockQueue
from executor.coordinator.outputs import commit_data
from executor.coordinator.specs import StageSpecs
from executor.coordinator.types import RunOptions
from executor.dvcformat.datasources import current, data_sources, record
from executor.errors import ConfigError, WorkspaceError
from executor.limits import Limits
from executor.pipeline import Dag, ParamsReader
from executor.pipeline.model import Stage
from executor.workspace import Workspace


class Preflight:
    """What one run checks of its plan: `images` (image -> first stage) and `imageless`
    (stages no image is configured for) are what it found."""

    def __init__(
        self,
        ws: Workspace,
        dag: Dag,
        options: RunOptions,
        params: ParamsReader,
        specs: StageSpecs,
        queue: LockQueue,
        say: Callable[[str], None],
    ) -> None:
        self.ws, self.dag, self.options, self.params = ws, dag, options, params
        self.specs, self.queue, self.say = specs, queue, say
        self.images: dict[str, str] = {}
        self.imageless: set[str] = set()
        self._tracked: set[str] | None = None  # outputs of the plan that git tracks

    def check(self, stages: list[Stage]) -> None:
        """Check what can be checked before anything changes: images named, params keys
        present, every dep either in the workspace or produced by a stage (or a file DVC
        writes after each stage it runs: a dvc.lock of this pipeline, or the .gitignore
        beside a cached output)."""
        for stage in stages:
            self.queue.recorded(stage)  # every dvc.lock read and checked before anything changes
            if stage.frozen:
                continue
            try:
                self.images.setdefault(self.specs.image_of(stage), stage.address)
            except ConfigError:
                # Needed only if it runs or is looked up (with the image in the run-cache
                # key): an up-to-date pipeline needs no image, as `dvc repro` needs none.
                self.imageless.add(stage.address)
            self.params.values(stage)
            self.specs.stage_env(stage)
            try:
                Limits.from_meta(stage.executor_meta)
            except ConfigError as exc:
                raise ConfigError(f"{stage.dvcfile}: stage '{stage.address}': {exc}") from None
            for dep in stage.deps:
                path = stage.repo_path(dep)
                if self.options.allow_missing or self.dag.producers(path):
                    continue  # checked at the stage's turn, against what dvc.lock recorded
                if not (self.ws.root / path).exists() and path not in self._written(stages):
                    raise WorkspaceError(
                        f"stage '{stage.address}': dependency '{dep}' does not exist ({path}); "
                        "create it or add the stage that produces it"
                    )

    def _written(self, stages: list[Stage]) -> set[str]:
        """Files DVC writes after a stage ran: each dvc.lock, each cached output's .gitignore
        (in git). Only asked about a missing dep, so the no-op path never builds it."""
        written = {stage.lockfile for stage in stages}
        if self.ws.in_git():
            written.update(
                posixpath.join(posixpath.dirname(stage.repo_path(out.path)), ".gitignore")
                for stage in stages
                for out in stage.outs
                if out.cache
            )
        return written

    def verify_data_sources(self, stages: list[Stage]) -> None:
        """As `dvc repro`: each `.dvc` output a stage depends on is checked first; a changed
        one is committed to the cache and its `.dvc` file updated (not with --dry)."""
        if self.options.downstream:
            return  # DVC plans the targets and what follows: no data source comes after them
        deps = [
            path
            for stage in stages
            if not stage.frozen  # DVC's graph cuts a frozen stage off from what it uses
            for path in (stage.repo_path(dep) for dep in stage.deps)
            if not self.dag.producers(path)
        ]
        for source in data_sources(self.ws.root, deps):
            shown = os.path.relpath(self.ws.root / source.dvcfile, self.ws.cwd)
            path = inside(self.ws.root, source.path)
            if not path.exists():
                if self.options.allow_missing:
                    continue
                raise WorkspaceError(
                    f"'{source.dvcfile}': its data '{source.path}' does not exist; get it back "
                    "with `executor pull` or `dvc checkout`"
                )
            info = current(self.ws.root, source, self.ws.hasher)
            if info.md5 == source.md5:
                self.say(f"'{shown}' didn't change, skipping")
                continue
            if self.options.dry:
                self.say(f"'{shown}' changed: it would be committed before the stages")
                continue
            self.say(f"Verifying data sources in stage: '{shown}'")
            # Changed content is recorded with DVC 3's md5, whatever hash recorded it before.
            if source.cache and not self.options.no_commit:
                info = commit_data(self.ws.store, self.ws.hasher, self.ws.root, source.path)
            else:
                info = self.ws.hasher.hash_path(path)
            record(self.ws.root, source, info)

    def check_untracked(self, stage: Stage) -> None:
        """DVC refuses to save an output git tracks (OutputAlreadyTrackedError), after the
        stage ran; executor refuses before the stage runs or is restored. Git is asked once
        per command, for every output of the plan, when the first stage does not skip."""
        if self.options.dry or not self.ws.in_git():
            return
        if self._tracked is None:
            from executor.dvcformat.gitignore import tracked_by_git

            plan = [self.dag.stages[address] for address in self.queue.plan]
            outs = [s.repo_path(o.path) for s in plan for o in s.outs if o.cache]
            self._tracked = tracked_by_git(self.ws.root, outs)
        for out in stage.outs:
            path = stage.repo_path(out.path)
            if out.cache and path in self._tracked:
                raise WorkspaceError(
                    f"stage '{stage.address}': output '{out.path}' is already tracked by git; "
                    f"remove it from git (`git rm -r --cached '{path}'`), then run again"
                )
