"""`executor fetch RUN`: a detached run's results landed in a workspace, as `dvc repro`
would have left it: outputs checked out, dvc.lock written in plan order, the runs recorded
in the local run-cache.

Nothing is landed unless the workspace still holds what the run was submitted with: each
stage's command, params and every input the submitter hashed (deps, params files,
`.dvcignore` files, persist outputs). Results are checked as an attached submit checks
them: a result names what was submitted, and a run is recorded in the store as a worker's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from executor.coordinator.inputs import describe_inputs
from executor.coordinator.lockqueue import LockQueue
from executor.coordinator.outputs import checkout_entry
from executor.dvcformat.entry import Entry
from executor.errors import InvalidJobSpec, RemoteError, UserError
from executor.fleet.advance import RunSteps
from executor.fleet.objects import FleetObjects
from executor.fleet.results import check_result
from executor.fleet.runs import SETTLED, RunInfo, StageState
from executor.fleet.templates import Template
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.pipeline import Dag, ParamsReader
from executor.pipeline.model import Stage
from executor.pipeline.paramvalues import same_values
from executor.runcache import RunCache, env_digest
from executor.workspace import Workspace


@dataclass
class Landed:
    """What `fetch` did per stage, and the run's failures (stage -> message)."""

    status: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    state: str = ""


class RunFetch:
    """Lands run `run_id` of `steps`' Redis and store in `ws`, whose pipeline is `dag`."""

    def __init__(self, ws: Workspace, dag: Dag, steps: RunSteps, run_id: str) -> None:
        self.ws, self.dag, self.steps, self.run_id = ws, dag, steps, run_id
        self.info: RunInfo = steps.runs.info(run_id)
        self.stages: dict[str, StageState] = steps.runs.stages(run_id)
        assert steps.store is not None
        self.store = steps.store

    def land(self, echo: Callable[[str], None]) -> Landed:
        info = self.info
        if info.state == "running":
            left = sum(
                1 for s in self.stages.values() if s.state in ("waiting", "queued", "running")
            )
            raise UserError(
                f"run {info.id} is still running ({left} stage(s) left); wait for it "
                f"(`executor status {info.id}`) or cancel it (`executor cancel {info.id}`)"
            )
        plan = [self._stage(a) for a in info.order]
        specs = {s.address: self.check_inputs(s) for s in plan if self._template(s.address)}
        landed = Landed(state=info.state)
        queue = LockQueue(self.ws, self.dag, echo, landed.status)
        queue.set_plan(plan)
        objects = FleetObjects(self.ws, self.store)
        for stage in plan:
            state = self.stages[stage.address]
            entry = (state.result or {}).get("entry")
            if state.state not in SETTLED:
                landed.status[stage.address] = state.state
                message = str((state.error or {}).get("message") or state.state)
                if state.state == "failed":
                    landed.failures[stage.address] = message
                continue
            if isinstance(entry, Mapping) and state.state != "skipped":
                self._land(stage, dict(entry), state, specs.get(stage.address), objects, queue)
            landed.status[stage.address] = state.state
            queue.flush()
        queue.flush(final=True)
        return landed

    def _stage(self, address: str) -> Stage:
        stage = self.dag.stages.get(address)
        if stage is None:
            raise UserError(
                f"run {self.run_id} has stage '{address}', which this workspace's pipeline "
                "lacks; fetch it in a clone at the commit it was submitted from"
            )
        return stage

    def _template(self, address: str) -> Template | None:
        raw = self.steps.runs.template(self.run_id, address)
        try:
            return Template.from_dict(raw) if raw is not None else None
        except InvalidJobSpec as exc:
            raise RemoteError(f"run {self.run_id}: stage '{address}': {exc}") from None

    def check_inputs(self, stage: Stage) -> JobSpec:
        """The stage's spec as submitted, once the workspace is found to hold the same
        command, params and inputs; UserError naming the first difference."""
        template = self._template(stage.address)
        assert template is not None
        spec = JobSpec.from_dict(template.spec)
        where = f"run {self.run_id}: stage '{stage.address}'"
        fix = "check out the commit and data it was submitted from, or submit again"
        if stage.lock_cmd != spec.cmd:
            raise UserError(f"{where}: its command changed since it was submitted; {fix}")
        if not same_values(ParamsReader(self.ws.root).values(stage), dict(spec.params)):
            raise UserError(f"{where}: its params changed since it was submitted; {fix}")
        skip = frozenset(stage.repo_path(dep) for dep in template.sources)
        now = {
            i.path: i.md5 for i in describe_inputs(spec, self.ws.root, self.ws.hasher, skip).inputs
        }
        then = {i.path: i.md5 for i in spec.inputs if i.path not in skip}
        for path in sorted(set(now) | set(then)):
            if now.get(path) != then.get(path):
                raise UserError(
                    f"{where}: its input '{path}' changed since it was submitted; {fix}"
                )
        return spec

    def _land(
        self,
        stage: Stage,
        entry: Entry,
        state: StageState,
        submitted: JobSpec | None,
        objects: FleetObjects,
        queue: LockQueue,
    ) -> None:
        result = state.result or {}
        spec = self._spec(stage.address) if submitted is not None else None
        if state.state == "ran" and spec is not None:
            ran = JobResult.from_dict(result)
            check_result(spec, ran)
            env, layout = env_digest(spec.env), spec.layout()
            if not RunCache(self.store).produced(
                entry, ran.image_digest, env, spec.image, lambda: layout
            ):
                raise RemoteError(
                    f"stage '{stage.address}': its result is not recorded in the fleet's store "
                    "as a worker's run; it was not used"
                )
        outs = entry.get("outs", [])
        objects.fetch(outs)
        ws, cached = self.ws, {o.path: o.cache for o in stage.outs}
        checkout_entry(ws.store, ws.root, ws.hasher, wdir=stage.wdir, outs=outs, cached=cached)
        digest = str(result.get("image_digest") or "")
        if spec is not None and digest and stage.cacheable:
            RunCache(ws.store).save(
                entry,
                image=spec.image,
                image_digest=digest,
                env=env_digest(spec.env),
                layout=spec.layout(),
            )
        queue.add(stage, entry)

    def _spec(self, address: str) -> JobSpec | None:
        return self.steps.spec_of(self.run_id, address)
