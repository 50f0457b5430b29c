"""What `executor fetch` checks of a run's template before trusting anything it says: every
field is compared with the stage as this workspace defines it and with the files it holds
now. A template lives in Redis, where anyone who can write could have changed it."""

from __future__ import annotations

from collections.abc import Mapping

from executor.coordinator.inputs import describe_inputs
from executor.coordinator.plan import Evaluation
from executor.coordinator.specs import StageSpecs
from executor.coordinator.types import RunOptions
from executor.errors import ConfigError, UserError
from executor.fleet.submitted import Submitted, template_digest
from executor.fleet.templates import Template, sources_of
from executor.jobspec import JobSpec
from executor.pipeline import Dag, ParamsReader
from executor.pipeline.model import Stage
from executor.pipeline.model import repo_path as in_wdir
from executor.pipeline.paramvalues import same_values
from executor.workspace import Workspace

FIX = "check out the commit and data it was submitted from, or submit again"


def _shape(spec: JobSpec) -> tuple[object, ...]:
    """What a spec says of a stage beyond its inputs' content."""
    outs = [(o.path, o.repo_path, o.persist, o.cached, o.kind) for o in spec.outs]
    return (
        spec.cmd, spec.lines, spec.image, spec.wdir, spec.dvc_stage, dict(spec.env),
        dict(spec.executor_meta), spec.cacheable, outs,
    )  # fmt: skip


class TemplateCheck:
    """Checks templates of run `run_id` against `ws`, whose pipeline is `dag`; `deferred`:
    the stages of the run that have templates."""

    def __init__(
        self, ws: Workspace, dag: Dag, run_id: str, deferred: list[str], local: Submitted | None
    ) -> None:
        self.ws, self.dag, self.run_id = ws, dag, run_id
        self.local = local  # what the submitting host kept, in the clone it submitted from
        self.specs = StageSpecs(ws, RunOptions())
        self.params = ParamsReader(ws.root)
        self.deferred = {
            dag.stages[a].repo_path(o.path): (a, o.path)
            for a in deferred
            if a in dag.stages
            for o in dag.stages[a].outs
        }

    def spec(self, stage: Stage, template: Template) -> JobSpec:
        """The template's spec, once each of its fields is this workspace's: UserError naming
        the first difference."""
        where = f"run {self.run_id}: stage '{stage.address}'"
        spec = JobSpec.from_dict(template.spec)
        values = self.params.values(stage)
        if not same_values(values, dict(spec.params)):
            raise UserError(f"{where}: its params changed since it was submitted; {FIX}")
        expected = self.specs.job_spec(
            stage, Evaluation(stage, [], values, None), image=self._image(stage, template, where)
        )
        if _shape(spec) != _shape(expected):
            raise UserError(
                f"{where}: its definition (command, image, environment, outputs) changed since "
                f"it was submitted; {FIX}"
            )
        try:
            sources = sources_of(stage, self.deferred)
        except UserError:
            sources = None
        if template.deps != list(stage.deps) or template.sources != sources:
            raise UserError(f"{where}: its dependencies changed since it was submitted; {FIX}")
        self._inputs(stage, spec, template, where)
        return spec

    def _image(self, stage: Stage, template: Template, where: str) -> str | None:
        """The image this workspace gives the stage; where it names none (the image came
        from the submitting shell's EXECUTOR_IMAGE), the template's, if this clone
        submitted that very template. UserError if neither can be known."""
        try:
            return self.specs.image_of(stage)
        except ConfigError:
            kept = self.local.templates.get(stage.address) if self.local is not None else None
            if kept is not None and kept == template_digest(template.to_dict()):
                return str(template.spec.get("image") or "") or None
            raise UserError(
                f"{where}: this workspace names no image for it; set EXECUTOR_IMAGE (or "
                "image: in .executor.yaml) as when the run was submitted"
            ) from None

    def _inputs(self, stage: Stage, spec: JobSpec, template: Template, where: str) -> None:
        """Every input the submitter hashed is as the workspace holds it now, and each dep
        the spec names has its input's content."""
        skip = frozenset(stage.repo_path(dep) for dep in template.sources)
        found = describe_inputs(spec, self.ws.root, self.ws.hasher, skip).inputs
        now = {i.path: i.md5 for i in found}
        then = {i.path: i.md5 for i in spec.inputs if i.path not in skip}
        for path in sorted(set(now) | set(then)):
            if now.get(path) != then.get(path):
                raise UserError(
                    f"{where}: its input '{path}' changed since it was submitted; {FIX}"
                )
        named = {str(d["path"]): d for d in spec.deps}
        if set(named) != set(stage.deps) - set(template.sources):
            raise UserError(f"{where}: its dependencies changed since it was submitted; {FIX}")
        for dep, item in named.items():
            if now.get(in_wdir(spec.wdir, dep)) != _md5(item):
                raise UserError(
                    f"{where}: its dependency '{dep}' changed since it was submitted; {FIX}"
                )


def _md5(item: Mapping[str, object]) -> object:
    return item.get("md5")
