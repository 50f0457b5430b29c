"""Carrying a detached run on: what a worker does when a job of a run starts and ends, and
how the stages waiting for it are decided and enqueued. Nothing here runs a container:
the worker runs its job as any other (worker.fleetjob), then calls `finished`.

Every state change is a compare-and-set on the stage's record (fleet.runs), so two workers
ending the last two upstream stages at once enqueue the stage after them once, and a job a
cancel or a requeue replaced never writes over its successor.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from executor.dvcformat.entry import Entry
from executor.errors import InvalidJobSpec
from executor.fleet.keys import (
    EVENTS_TTL,
    IMAGES_KEY,
    JOB_FUNCTION,
    RunIndex,
)
from executor.fleet.runrecords import StageState
from executor.fleet.runs import ENDED, LIVE, SETTLED, Runs
from executor.fleet.templates import Template, fill, key_of, restored_entry, unchanged
from executor.jobfields import is_image_digest
from executor.jobspec import JobSpec
from executor.runcache import RunCache, env_digest
from executor.store.base import ObjectStore

log = logging.getLogger(__name__)

RETRIES = 2  # runs of a stage again after its worker was lost (its own failure: none)


def new_job_id() -> str:
    return f"executor-{uuid.uuid4().hex}"


class RunSteps:
    """The moves of the runs in `redis`; `store` (the fleet's) for run-cache lookups of
    stages decided here, absent where none is needed (cancelling)."""

    def __init__(self, redis: Any, store: ObjectStore | None = None, store_url: str = "") -> None:
        self.redis = redis
        self.runs = Runs(redis)
        self.store = store
        self.store_url = store_url

    # -- enqueueing ---------------------------------------------------------------------------
    def enqueue(
        self,
        run_id: str,
        address: str,
        spec: JobSpec,
        queue: str,
        *,
        after: tuple[str, ...],
        replacing: str | None = None,
    ) -> str | None:
        """Enqueue the stage's job if its state is one of `after` (and its job `replacing`,
        if given); the job's id, or None if another actor moved the stage first."""
        old = self.runs.stage(run_id, address)
        info = self.runs.info(run_id)
        job_id = new_job_id()
        new = StageState(
            state="queued", job=job_id, queue=queue, queued=time.time(), attempts=old.attempts + 1
        )
        if not self.runs.move(run_id, address, after, new, job=replacing):
            return None
        self.runs.bind_job(job_id, run_id, address)
        from rq import Queue
        from rq.serializers import JSONSerializer

        Queue(queue, connection=self.redis, serializer=JSONSerializer).enqueue(
            JOB_FUNCTION,
            spec.to_dict(),
            self.store_url,
            job_id=job_id,
            job_timeout=-1,  # the stage's own timeout (meta.executor.timeout) applies
            result_ttl=EVENTS_TTL,
            failure_ttl=EVENTS_TTL,
            description=f"stage {address} of {info.where()}, run {run_id}",
        )
        return job_id

    # -- a job's life -------------------------------------------------------------------------
    def starting(self, run_id: str, address: str, job_id: str, worker: str) -> bool:
        """Whether the job may run its stage: it is the stage's current job, and neither the
        run nor the stage was cancelled. The stage reads `running` from here."""
        state = self.runs.stage(run_id, address)
        if state.job != job_id or self.runs.info(run_id).state == "cancelled":
            return False
        new = replace(state, state="running", worker=worker, started=time.time())
        return self.runs.move(run_id, address, ("queued",), new, job=job_id)

    def finished(
        self,
        run_id: str,
        address: str,
        job_id: str,
        spec: JobSpec | None,
        outcome: Mapping[str, Any],
    ) -> None:
        """Record how the stage's job ended, then decide what waited for it. A job handed
        over by a draining worker is enqueued again; a lost one too, up to RETRIES times."""
        state = self.runs.stage(run_id, address)
        if state.job != job_id:
            return  # replaced (requeued, cancelled): its successor speaks for the stage
        failure = outcome.get("failure") if not outcome.get("ok") else None
        kind = failure.get("kind") if isinstance(failure, Mapping) else None
        retry = kind in ("handed_over", "lost") and state.attempts <= RETRIES
        if retry and spec is not None:  # a spec that does not parse is never run again
            where = (state.queue or "", ("running", "queued"), job_id)
            if self.enqueue(run_id, address, spec, where[0], after=where[1], replacing=where[2]):
                return
        new = replace(state, ended=time.time())
        if outcome.get("ok"):
            result = outcome.get("result")
            done = "restored" if outcome.get("restored") else "ran"  # a hit: no container
            new = replace(
                new, state=done, result=dict(result) if isinstance(result, Mapping) else None
            )
        elif kind == "cancelled":
            new = replace(new, state="cancelled")
        else:
            new = replace(
                new, state="failed", error=dict(failure) if isinstance(failure, Mapping) else None
            )
        self.runs.move(run_id, address, ("running", "queued"), new, job=job_id)
        self.advance(run_id)

    def lost(self, job_id: str) -> None:
        """A job whose worker was lost (worker.lostjobs): its stage runs again, or fails."""
        bound = self.runs.job_of(job_id)
        if bound is None:
            return
        run_id, address = bound
        spec = self.spec_of(run_id, address)
        if spec is None:
            return
        failure = {"kind": "lost", "message": f"stage '{address}': its worker was lost"}
        self.finished(run_id, address, job_id, spec, {"ok": False, "failure": failure})

    def spec_of(self, run_id: str, address: str) -> JobSpec | None:
        """The stage's job spec: its template, filled in from its upstream results."""
        template = self._template(run_id, address)
        if template is None:
            return None
        info, stages = self.runs.info(run_id), self.runs.stages(run_id)
        try:
            return fill(template, results_of(stages, info.waits.get(address, [])))
        except InvalidJobSpec:
            return None

    # -- deciding waiting stages --------------------------------------------------------------
    def advance(self, run_id: str) -> None:
        """Decide every waiting stage whose upstream stages are all done (restored, skipped
        or enqueued), or ended otherwise (not run); then the run's own state."""
        if not self.runs.info(run_id).detached:
            return  # an attached run's coordinator decides and concludes it
        progress = True
        while progress:
            progress = False
            info = self.runs.info(run_id)
            stages = self.runs.stages(run_id)
            for address in info.order:
                state = stages.get(address)
                if state is None or state.state != "waiting":
                    continue
                ups = [
                    stages.get(u, StageState(state="not run")) for u in info.waits.get(address, [])
                ]
                if info.state == "cancelled":
                    progress |= self.runs.move(
                        run_id, address, ("waiting",), replace(state, state="cancelled")
                    )
                elif any(u.state in ENDED - SETTLED for u in ups):
                    progress |= self.runs.move(
                        run_id, address, ("waiting",), replace(state, state="not run")
                    )
                elif all(u.state in SETTLED for u in ups):
                    results = results_of(stages, info.waits.get(address, []))
                    progress |= self._decide(run_id, address, state, results)
        self._conclude(run_id)

    def _decide(
        self, run_id: str, address: str, state: StageState, results: Mapping[str, Entry]
    ) -> bool:
        template = self._template(run_id, address)
        try:
            if template is None:
                raise InvalidJobSpec("its template is missing")
            spec = fill(template, results)
        except InvalidJobSpec as exc:
            error = {"kind": "remote", "message": f"stage '{address}': cannot be resolved: {exc}"}
            return self.runs.move(
                run_id, address, ("waiting",), replace(state, state="failed", error=error)
            )
        now = time.time()
        if unchanged(template, spec) and template.if_unchanged in ("skip", "checkout"):
            done = "skipped" if template.if_unchanged == "skip" else "restored"
            result = {"entry": template.recorded, "image_digest": "", "kept": True}
            new = replace(state, state=done, result=result, started=now, ended=now)
            return self.runs.move(run_id, address, ("waiting",), new)
        if spec.cacheable and not template.force and self.store is not None:
            entry, digest = self.cached(spec)
            if entry is not None:
                result = {"entry": restored_entry(spec, entry), "image_digest": digest}
                new = replace(state, state="restored", result=result, started=now, ended=now)
                return self.runs.move(run_id, address, ("waiting",), new)
        return self.enqueue(run_id, address, spec, template.queue, after=("waiting",)) is not None

    def cached(self, spec: JobSpec) -> tuple[Entry | None, str]:
        """The fleet's run-cache entry for the filled-in stage, with the image digest the
        workers last resolved its image to (none yet: not cached, it runs)."""
        raw = self.redis.hget(IMAGES_KEY, spec.image)
        digest = raw.decode("utf-8", "replace") if raw else ""
        if not is_image_digest(digest) or self.store is None:
            return None, ""
        key, env, layout = key_of(spec), env_digest(spec.env), spec.layout()
        runcache = RunCache(self.store)
        # The Redis index first: a worker indexes its run before it lets go of the work's
        # lease, so a job that takes the lease next finds it there, whatever a listing of
        # the store would say yet; then the store itself, the truth.
        for value in RunIndex(self.redis).values(key, digest):
            found = runcache.check(key, value, digest, env, image=spec.image, layout=lambda: layout)
            if found is not None:
                return found.entry, digest
        hit = runcache.lookup(key, digest, env, spec.image, lambda: layout)
        return (hit.entry, digest) if hit is not None else (None, "")

    def _template(self, run_id: str, address: str) -> Template | None:
        raw = self.runs.template(run_id, address)
        try:
            return Template.from_dict(raw) if raw is not None else None
        except InvalidJobSpec:
            return None

    def _conclude(self, run_id: str) -> None:
        """The run's state once none of its stages can move any more."""
        info = self.runs.info(run_id)
        stages = self.runs.stages(run_id)
        if any(s.state in LIVE for s in stages.values()) or info.ended is not None:
            return
        if all(s.state in SETTLED for s in stages.values()):
            info.state = "succeeded"
        elif info.state != "cancelled":
            info.state = (
                "cancelled" if any(s.state == "cancelled" for s in stages.values()) else "failed"
            )
        info.ended = time.time()
        self.runs.set_info(info)


def results_of(stages: Mapping[str, StageState], ups: list[str]) -> dict[str, Entry]:
    """The lock entries the stages `ups` ended with (empty for one without)."""
    found: dict[str, Entry] = {}
    for up in ups:
        entry = (stages[up].result or {}).get("entry") if up in stages else None
        found[up] = dict(entry) if isinstance(entry, Mapping) else {}
    return found
