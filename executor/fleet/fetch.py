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
from dataclasses import dataclass, field, replace

from executor.coordinator.lockqueue import LockQueue
from executor.coordinator.outputs import checkout_entry
from executor.dvcformat.entry import Entry
from executor.errors import InvalidJobSpec, RemoteError, UserError
from executor.fleet.advance import RunSteps
from executor.fleet.fetchcheck import TemplateCheck
from executor.fleet.objects import FleetObjects
from executor.fleet.results import check_result
from executor.fleet.runrecords import RunInfo, StageState
from executor.fleet.runs import SETTLED
from executor.fleet.submitted import Submitted, submitted_here
from executor.fleet.templates import Template, fill, key_of, restored_entry, unchanged
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.pipeline import Dag
from executor.pipeline.model import Stage
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
        and the image digest of its run. Every result is checked first (`_verify`), and a
        stage's spec is filled in only from its upstream stages' checked entries."""
        local = submitted_here(self.ws.root, self.run_id)
        deferred = [a for a in self.info.order if self._template(a)]
        check = TemplateCheck(self.ws, self.dag, self.run_id, deferred, local)
        accepted: dict[str, Entry] = {}
        todo: dict[str, tuple[Entry, JobSpec | None, str]] = {}
        for stage in plan:
            state = self.stages[stage.address]
            if state.state == "failed":
                landed.failures[stage.address] = str((state.error or {}).get("message") or "")
            if state.state not in SETTLED:
                continue
            result = state.result or {}
            entry = result.get("entry")
            template = self._template(stage.address)
            if template is None:  # settled by the submitting host
                if state.state != "skipped":
                    todo[stage.address] = (self._settled_here(stage, entry, local, queue), None, "")
                continue
            if not isinstance(entry, Mapping):
                raise self._unconfirmed(stage)
            check.spec(stage, template)
            ups = {producer for producer, _ in template.sources.values()}
            if not ups <= set(accepted):
                raise self._unconfirmed(stage)
            filled = fill(template, {u: accepted[u] for u in ups})
            self._verify(stage, state, dict(entry), filled, template, queue)
            accepted[stage.address] = dict(entry)
            if state.state != "skipped":
                todo[stage.address] = (dict(entry), filled, str(result.get("image_digest") or ""))
        return todo

    def _settled_here(
        self, stage: Stage, entry: object, local: Submitted | None, queue: LockQueue
    ) -> Entry:
        """The entry of a stage the submitting host restored: from the file it kept, or
        (in another clone) only if it is the one dvc.lock has."""
        mine = local.entries.get(stage.address) if local is not None else None
        if isinstance(mine, Mapping):
            return dict(mine)
        if isinstance(entry, Mapping) and dict(entry) == queue.recorded(stage):
            return dict(entry)
        raise UserError(
            f"run {self.run_id}: stage '{stage.address}' was restored on the submitting "
            "host; fetch in that clone, or run the stage here"
        )

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
        self,
        stage: Stage,
        state: StageState,
        entry: Entry,
        spec: JobSpec,
        template: Template,
        queue: LockQueue,
    ) -> None:
        """A result from Redis is used only as the store (or dvc.lock) confirms it: a run is
        recorded there as a worker's run of exactly this spec, a restored entry is in the
        fleet's run-cache, a stage kept as it was has dvc.lock's entry and inputs that came
        back as dvc.lock has them. Whoever can write to Redis could otherwise make this
        workspace check out any object at any path, or keep a stale one."""
        result = state.result or {}
        env, layout = env_digest(spec.env), spec.layout()
        if result.get("kept"):
            decided = "skip" if state.state == "skipped" else "checkout"
            ok = (
                template.if_unchanged == decided
                and entry == queue.recorded(stage)
                and unchanged(replace(template, recorded=queue.recorded(stage)), spec)
            )
        elif state.state == "ran":
            ran = JobResult.from_dict(result)
            check_result(spec, ran)
            made = (entry, ran.image_digest, env, spec.image, lambda: layout)
            ok = RunCache(self.store).produced(*made)
        elif state.state == "restored":
            digest = str(result.get("image_digest") or "")
            hit = RunCache(self.store).lookup(key_of(spec), digest, env, spec.image, lambda: layout)
            ok = hit is not None and hit.entry.get("outs") == entry.get("outs")
            ok = ok and entry == restored_entry(spec, hit.entry if hit else {})
        else:
            ok = False
        if not ok:
            raise self._unconfirmed(stage)

    def _unconfirmed(self, stage: Stage) -> RemoteError:
        return RemoteError(
            f"run {self.run_id}: stage '{stage.address}': its result in Redis is not "
            "confirmed by the fleet's store or dvc.lock; nothing was fetched. Someone else "
            "writes to the fleet's Redis: find out who"
        )
