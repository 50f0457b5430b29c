"""`executor submit --detach`: the submitting side of a run the fleet carries on alone.

The runner plans and decides as for any run; what it can settle here (skipped, checked
out, restored from a run-cache) it settles. A stage that must run is not executed: its
inputs go into the store and its job spec becomes a template (fleet.templates); a stage
after such a stage gets a template with its upstream deps left to fill. Then the run is
recorded in Redis (fleet.runs), the stages that can start are enqueued, and the command
returns. Workers carry the run on (fleet.advance); `executor fetch` lands its results.
"""

from __future__ import annotations

import time
from dataclasses import replace

from executor.coordinator.decide import missing_allowed
from executor.coordinator.plan import Evaluation, evaluate, hash_deps, in_cache
from executor.coordinator.runner import Runner
from executor.coordinator.types import Launch, RunSummary
from executor.dvcformat.entry import Entry
from executor.errors import ConfigError
from executor.fleet.advance import RunSteps
from executor.fleet.backend import FleetBackend
from executor.fleet.runrecords import RunInfo, StageState, new_run_id, who
from executor.fleet.submitted import Submitted, keep_here, template_digest
from executor.fleet.templates import Template, sources_of
from executor.jobspec import JobSpec
from executor.pipeline.model import Stage

PLACEHOLDER = {"md5": "0" * 32}  # an upstream output's item until a worker fills it in


class DetachedRun:
    """The deferred stages of one `submit --detach` (a coordinator.types.Deferral)."""

    def __init__(self, runner: Runner) -> None:
        if runner.options.no_commit:
            raise ConfigError(
                "--no-commit cannot be used with --detach: a detached run's outputs are "
                "committed to the fleet's store for `executor fetch`"
            )
        self.runner = runner
        self.templates: dict[str, Template] = {}
        self.waits: dict[str, list[str]] = {}
        self.roots: list[str] = []  # stages whose jobs are enqueued as the run is recorded

    @property
    def backend(self) -> FleetBackend:
        backend = self.runner.backend
        assert isinstance(backend, FleetBackend)
        return backend

    def _committed(self, spec: JobSpec) -> JobSpec:
        # Every output travels through the store, `cache: false` ones too.
        return replace(spec, outs=tuple(replace(o, committed=True) for o in spec.outs))

    def defer(self, launch: Launch) -> None:
        runner, stage = self.runner, launch.stage
        runner.say(f"Stage '{runner.shown(stage)}' goes to the fleet: {launch.why}")
        spec = self._committed(runner.specs.job_spec(stage, launch.ev))
        spec = replace(spec, inputs=self.backend.objects.push_inputs(spec, runner.cancel))
        self.templates[stage.address] = Template(
            spec=spec.to_dict(),
            deps=list(stage.deps),
            sources={},
            recorded=launch.ev.recorded,
            if_unchanged="run",
            queue=self.backend.routes.queue_for(spec).name,
            force=runner.options.force,
        )
        self.waits[stage.address] = []
        self.roots.append(stage.address)

    def wait(self, stage: Stage, ups: list[str]) -> None:
        runner = self.runner
        runner.say(f"Stage '{runner.shown(stage)}' is left to the fleet, after {', '.join(ups)}")
        if stage.frozen:
            raise ConfigError(
                f"stage '{stage.address}' is frozen after stages the fleet runs; submit "
                "without --detach"
            )
        deferred = {
            self.runner.dag.stages[a].repo_path(o.path): (a, o.path)
            for a in self.templates
            for o in self.runner.dag.stages[a].outs
        }
        sources = sources_of(stage, deferred)
        known = dict(runner.known_outs)
        known.update({stage.repo_path(dep): PLACEHOLDER for dep in sources})
        recorded = runner.queue.recorded(stage)
        allowed = recorded if runner.options.allow_missing else None
        deps = [
            d
            for d in hash_deps(runner.ws.root, stage, runner.ws.hasher, known, allowed)
            if d["path"] not in sources
        ]
        ev = Evaluation(stage, deps, runner.params.values(stage), recorded)
        spec = self._committed(runner.specs.job_spec(stage, ev))
        skip = frozenset(stage.repo_path(dep) for dep in sources)
        spec = replace(spec, inputs=self.backend.objects.push_inputs(spec, runner.cancel, skip))
        self.templates[stage.address] = Template(
            spec=spec.to_dict(),
            deps=list(stage.deps),
            sources=sources,
            recorded=recorded,
            if_unchanged=self._if_unchanged(stage, recorded),
            queue=self.backend.routes.queue_for(spec).name,
            force=runner.options.force,
        )
        self.waits[stage.address] = list(ups)

    def _if_unchanged(self, stage: Stage, recorded: Entry | None) -> str:
        """What `dvc repro` would do with the stage should its deps and params turn out
        as dvc.lock records them (coordinator.decide, outputs compared here and now)."""
        runner = self.runner
        if runner.options.force or recorded is None:
            return "lookup" if stage.cacheable and not runner.options.force else "run"
        deps = [dict(d) for d in recorded.get("deps", []) or []]
        params = dict(recorded.get("params", {}) or {})
        ws = runner.ws
        ev = evaluate(ws.root, stage, deps, params, recorded, ws.hasher, ws.store)
        if (not ev.reasons and not ev.outs_only) or missing_allowed(ev, runner.options):
            return "skip"
        outs = recorded.get("outs", []) or []
        if ev.outs_only and stage.cacheable and all(in_cache(ws.store, o) for o in outs):
            return "checkout"
        return "lookup" if stage.cacheable else "run"

    def record(self, summary: RunSummary) -> str:
        """Record the run in Redis and enqueue the stages that can start; its id."""
        runner, backend = self.runner, self.backend
        user, host = who()
        run_id = new_run_id()
        order = [a for a in runner.queue.plan if a in summary.status]
        states: dict[str, StageState] = {}
        now = time.time()
        for address in order:
            status = summary.status[address]
            if address in self.templates:
                states[address] = StageState(state="waiting")
            else:
                entry = runner.results.get(address)
                result = {"entry": entry, "image_digest": ""} if entry is not None else None
                done = "skipped" if status in ("skipped", "verified") else "restored"
                states[address] = StageState(state=done, result=result, started=now, ended=now)
        info = RunInfo(
            id=run_id,
            user=user,
            host=host,
            repo=str(runner.ws.root),
            created=now,
            store_url=backend.config.store_url,
            order=order,
            waits=self.waits,
        )
        templates = {a: t.to_dict() for a, t in self.templates.items()}
        kept = Submitted(
            {a: e for a, e in runner.results.items() if a not in self.templates},
            {a: template_digest(t) for a, t in templates.items()},
        )
        keep_here(runner.ws.root, run_id, kept)
        steps = RunSteps(backend.redis, None, backend.config.store_url)  # no lookup here
        steps.runs.create(info, templates, states)
        for address in self.roots:
            template = self.templates[address]
            spec = JobSpec.from_dict(template.spec)
            steps.enqueue(run_id, address, spec, template.queue, after=("waiting",))
        steps.advance(run_id)  # a run with nothing to run ends here
        return run_id
