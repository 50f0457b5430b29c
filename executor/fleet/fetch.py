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
from executor.fleet.submitted import submitted_here
from executor.fleet.templates import Template, key_of
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
        if not info.detached:
            raise UserError(
                f"run {info.id} was an attached submission: its results landed where it was "
                "submitted from as it ran; nothing to fetch (submit with --detach to fetch later)"
            )
        if info.state == "running":
            left = sum(
                1 for s in self.stages.values() if s.state in ("waiting", "queued", "running")
            )
            raise UserError(
                f"run {info.id} is still running ({left} stage(s) left); wait for it "
                f"(`executor status {info.id}`) or cancel it (`executor cancel {info.id}`)"
            )
        plan = [self._stage(a) for a in info.order]
        landed = Landed(state=info.state)
        queue = LockQueue(self.ws, self.dag, echo, landed.status)
        queue.set_plan(plan)
        todo = self._verified(plan, queue, landed)  # all checked before anything lands
        objects = FleetObjects(self.ws, self.store)
        for stage in plan:
            if stage.address in todo:
                entry, spec, digest = todo[stage.address]
                self._land(stage, entry, spec, digest, objects, queue)
            landed.status[stage.address] = self.stages[stage.address].state
            queue.flush()
        queue.flush(final=True)
        return landed

    def _verified(
        self, plan: list[Stage], queue: LockQueue, landed: Landed
    ) -> dict[str, tuple[Entry, JobSpec | None, str]]:
        """Per stage to land: its entry, its spec (None if settled on the submitting host)
        and the image digest of its run; every result checked first (`_verify`)."""
        local = submitted_here(self.ws.root, self.run_id)
        todo: dict[str, tuple[Entry, JobSpec | None, str]] = {}
        for stage in plan:
            state = self.stages[stage.address]
            if state.state == "failed":
                landed.failures[stage.address] = str((state.error or {}).get("message") or "")
            result = state.result or {}
            entry = result.get("entry")
            if state.state not in SETTLED or state.state == "skipped":  # dvc.lock has it
                continue
            if not isinstance(entry, Mapping):
                continue
            digest = str(result.get("image_digest") or "")
            if self._template(stage.address) is None:  # settled by the submitting host
                mine = (local or {}).get(stage.address)
                if mine is None and dict(entry) != queue.recorded(stage):
                    raise UserError(
                        f"run {self.run_id}: stage '{stage.address}' was restored on the "
                        "submitting host; fetch in that clone, or run the stage here"
                    )
                todo[stage.address] = (dict(mine or entry), None, "")
                continue
            spec = self.check_inputs(stage)
            filled = self._spec(stage.address) or spec
            self._verify(stage, state, dict(entry), filled, queue)
            todo[stage.address] = (dict(entry), filled, digest)
        return todo

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
        spec: JobSpec | None,
        digest: str,
        objects: FleetObjects,
        queue: LockQueue,
    ) -> None:
        """Check a stage's outputs out (fetching what the local cache lacks), record its
        run in the local run-cache, queue its dvc.lock entry."""
        outs = entry.get("outs", [])
        objects.fetch(outs)
        ws, cached = self.ws, {o.path: o.cache for o in stage.outs}
        checkout_entry(ws.store, ws.root, ws.hasher, wdir=stage.wdir, outs=outs, cached=cached)
        if spec is not None and digest and stage.cacheable:
            env, layout = env_digest(spec.env), spec.layout()
            RunCache(ws.store).save(
                entry, image=spec.image, image_digest=digest, env=env, layout=layout
            )
        queue.add(stage, entry)

    def _verify(
        self, stage: Stage, state: StageState, entry: Entry, spec: JobSpec, queue: LockQueue
    ) -> None:
        """A result from Redis is used only as the store (or dvc.lock) confirms it: a run is
        recorded there as a worker's, a restored entry is in the fleet's run-cache, a stage
        kept as it was has the entry dvc.lock has. Whoever can write to Redis could
        otherwise make this workspace check out any object at any path."""
        result = state.result or {}
        env, layout = env_digest(spec.env), spec.layout()
        if result.get("kept"):
            ok = entry == queue.recorded(stage)
        elif state.state == "ran":
            ran = JobResult.from_dict(result)
            check_result(spec, ran)
            made = (entry, ran.image_digest, env, spec.image, lambda: layout)
            ok = RunCache(self.store).produced(*made)
        else:
            digest = str(result.get("image_digest") or "")
            hit = RunCache(self.store).lookup(key_of(spec), digest, env, spec.image, lambda: layout)
            ok = hit is not None and hit.entry.get("outs") == entry.get("outs")
        if not ok:
            raise RemoteError(
                f"run {self.run_id}: stage '{stage.address}': its result in Redis is not "
                "confirmed by the fleet's store; nothing was fetched for it. Someone else "
                "writes to the fleet's Redis: find out who"
            )

    def _spec(self, address: str) -> JobSpec | None:
        return self.steps.spec_of(self.run_id, address)
