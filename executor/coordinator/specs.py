"""A stage as a job: its image, its environment, the spec a backend runs, its layout."""

from __future__ import annotations

import os
from collections.abc import Mapping

from executor.coordinator.inputs import layout_in
from executor.coordinator.plan import Evaluation
from executor.coordinator.types import RunOptions
from executor.errors import ConfigError
from executor.jobspec import JobSpec, OutRequest
from executor.pipeline.model import Stage
from executor.workspace import Workspace


class StageSpecs:
    """Job specs of the stages of one run in `ws`."""

    def __init__(self, ws: Workspace, options: RunOptions) -> None:
        self.ws = ws
        self.options = options

    def image_of(self, stage: Stage) -> str:
        image = stage.executor_meta.get("image") or self.ws.settings.image
        if not image:
            raise ConfigError(
                f"stage '{stage.address}' has no container image: set meta.executor.image in "
                f"{stage.dvcfile}, `image:` in .executor.yaml, or EXECUTOR_IMAGE"
            )
        return str(image)

    def stage_env(self, stage: Stage) -> dict[str, str]:
        """Extra variables: `.executor.yaml` `env`, then the stage's `meta.executor.env`."""
        extra = stage.executor_meta.get("env") or {}
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in extra.items()
        ):
            raise ConfigError(
                f"{stage.dvcfile}: stage '{stage.address}': meta.executor.env must map "
                "variable names to strings"
            )
        return {**self.ws.settings.container_env, **{k: str(v) for k, v in extra.items()}}

    def job_spec(self, stage: Stage, ev: Evaluation, image: str | None = None) -> JobSpec:
        """`image`: the stage's image if known otherwise (its image from elsewhere)."""
        return JobSpec(
            address=stage.address,
            dvc_stage=self.ws.dvc_stage(stage),
            cmd=stage.lock_cmd,
            lines=stage.lines,
            image=image or self.image_of(stage),
            wdir=stage.wdir,
            deps=tuple(ev.deps),
            params=ev.params,
            outs=tuple(
                # DVC commits a cache: false metric or plot only with a run-cache entry.
                OutRequest(
                    o.path,
                    stage.repo_path(o.path),
                    o.cache or stage.cacheable,
                    o.persist,
                    o.cache,
                    o.kind,
                )
                for o in stage.outs
            ),
            cacheable=stage.cacheable,
            commit=not self.options.no_commit,
            executor_meta=dict(stage.executor_meta),
            env=self.stage_env(stage),
        )

    def layout(self, stage: Stage, ev: Evaluation) -> str | None:
        """The layout a worker's run must have recorded to stand for this stage's
        (runcache.Record.made_with); None under --dry while a dep is still missing: the
        upstream stage that makes it would run or be restored first."""
        spec = self.job_spec(stage, ev)
        if self.options.dry and any(
            not os.path.lexists(self.ws.root / stage.repo_path(str(d["path"]))) for d in ev.deps
        ):
            return None
        return layout_in(spec, self.ws.root, self.ws.hasher)
