"""The fleet backend of `executor submit`: stages run as RQ jobs on workers elsewhere.

The coordinator still plans, looks up, locks and checks out here, exactly as `executor run`
does; only a stage that must really run leaves this host. For it, the stage's inputs (deps,
params files, persist outputs) are put into the fleet's store by content (what the store has
already is not sent again), the job spec is enqueued as JSON, the worker's log lines come back
through a Redis stream as they are printed, and the outputs come back from the store into the
repository's cache and workspace. A run-cache hit in the fleet's store is fetched the same way:
work another team submitted is checked out, not run.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from executor.coordinator.outputs import checkout_entry
from executor.dvcformat.entry import stage_key
from executor.errors import (
    ExecutorError,
    FleetError,
    JobLost,
    RemoteError,
    StageCancelled,
)
from executor.fleet.attached import AttachedRun
from executor.fleet.config import REDIS_TIMEOUT, FleetConfig, connect
from executor.fleet.jobs import Follow
from executor.fleet.keys import (
    EVENTS_TTL,
    JOB_FUNCTION,
    RunIndex,
    lease_key,
    redis_errors,
)
from executor.fleet.leases import Leases
from executor.fleet.lookups import FleetLookups
from executor.fleet.objects import FleetObjects
from executor.fleet.results import check_result
from executor.fleet.routing import Routes
from executor.fleet.uncommitted import land_uncommitted, remove_scratch
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.runcache import RunCache, env_digest
from executor.stageio import StageIO
from executor.store.base import ObjectStore
from executor.store.open import open_store
from executor.workspace import Workspace

log = logging.getLogger(__name__)

RECHECK_AFTER = 1.0  # seconds after a lookup missed beyond which it is worth asking again
RETRIES = 2  # runs of a stage again after its worker was lost (a stage's own failure: none)


class FleetBackend(FleetLookups):
    """Submits the stages that must run to the fleet and brings their outputs home."""

    def __init__(
        self, ws: Workspace, config: FleetConfig, jobs: int = 1, record: AttachedRun | None = None
    ) -> None:
        self.ws = ws
        self.record = record  # the submission's run in Redis, if it has one
        self.config = config
        self.redis = connect(config.redis_url, timeout=REDIS_TIMEOUT)
        if record is not None:
            record.start(self.redis)
        self.routes = Routes(self.redis, config, ws.root)
        self.leases = Leases(self.redis, self.routes.default.serializer)
        self.store: ObjectStore = open_store(config.store_url, ws.settings, base=ws.root)
        self.runcache = RunCache(self.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self.local_runs = RunCache(ws.store)
        self.index = RunIndex(self.redis)
        self._image_names: dict[str, str] = {}  # digest -> the image name resolved to it
        self.objects = FleetObjects(ws, self.store)
        self._enqueued: dict[str, list[str]] = {}  # stage -> the ids of the jobs it took

    # -- Backend (resolve_image and lookup: FleetLookups) ---------------------------------
    def execute(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> JobResult:
        looked = time.monotonic()  # the runner's lookup missed just now
        # Every output travels through the store, `cache: false` ones too.
        outs = tuple(replace(o, committed=True) for o in spec.outs)
        spec = replace(spec, outs=outs, inputs=self.objects.push_inputs(spec, io.cancel))
        if not spec.commit:
            return self._uncommitted(spec, io, looked)
        result, confirmed = self._run(spec, io, looked)
        result = self._checked(spec, result)
        env, layout = env_digest(spec.env), spec.layout()
        made = (result.entry, result.image_digest, env, spec.image, lambda: layout)
        if not confirmed and not self.runcache.produced(*made):
            raise RemoteError(
                f"stage '{spec.address}': the result that came back is not recorded in the "
                "fleet's store as a worker's run; it was not used. Someone else writes to "
                "the fleet's Redis: find out who, then submit again"
            )
        self.objects.fetch(result.entry.get("outs", []))
        ws, cached = self.ws, {o.path: o.cached for o in spec.outs}
        outs = result.entry.get("outs", [])
        checkout_entry(ws.store, ws.root, ws.hasher, wdir=spec.wdir, outs=outs, cached=cached)
        if spec.cacheable and result.run_key is not None:
            # As after a local run: `dvc repro` and `executor run` here find it too.
            digest = result.image_digest
            self.local_runs.save(
                result.entry, image=spec.image, image_digest=digest, env=env, layout=layout
            )
        return result

    def _checked(self, spec: JobSpec, result: JobResult) -> JobResult:
        check_result(spec, result)
        if result.entry.get("params"):  # through JSON its int keys became strings: ours back
            result = replace(result, entry={**result.entry, "params": dict(spec.params)})
        return result

    def _uncommitted(self, spec: JobSpec, io: StageIO, looked: float) -> JobResult:
        """--no-commit (fleet.uncommitted): the outputs land in the workspace only."""
        try:
            result = self._checked(spec, self._run(spec, io, looked)[0])
            cached = {o.path: o.cached for o in spec.outs}
            outs = list(result.entry.get("outs", []))
            job_id = self._enqueued[spec.address][-1]
            land_uncommitted(self.ws, self.config.store_url, job_id, wdir=spec.wdir, outs=outs,
                             cached=cached)  # fmt: skip
            return result
        finally:
            remove_scratch(self.ws, self.config.store_url, self._enqueued.pop(spec.address, []))

    def _run(
        self,
        spec: JobSpec,
        io: StageIO,
        looked: float,
    ) -> tuple[JobResult, bool]:
        """The stage's result, and whether the store already confirmed it: from a job of
        ours, from the job of another submission doing the same work right now (followed
        only to adopt its success), or from the run-cache if such a job finished while we
        were getting ready."""
        key = stage_key(spec.cmd, spec.deps, spec.params, [o.path for o in spec.outs])
        env, layout = env_digest(spec.env), spec.layout()
        queue = self.routes.queue_for(spec)
        where = (queue.name, self.config.store_url, f"{env}:{layout}")
        lease = lease_key(key, spec.image, *where)
        cancel = io.cancel
        lost = 0
        followed: set[str] = set()  # jobs of others already followed: never twice
        while True:
            if cancel.is_set():
                raise StageCancelled(spec.address)
            job_id = f"executor-{uuid.uuid4().hex}"
            # --no-commit work is never shared: its outputs come back through its own job.
            shared = spec.cacheable and spec.commit
            other = self.leases.claim(lease, job_id, cancel, followed) if shared else None
            if other is None:
                if cancel.is_set():
                    self.leases.release(lease, job_id)
                    raise StageCancelled(spec.address)
                if shared:  # a job that held the lease until now has indexed its run
                    ended = self._ran_meanwhile(spec, key, env, layout, looked)
                    if ended is not None:
                        self.leases.release(lease, job_id)
                        return ended, True
                job = self._enqueue(queue, spec, job_id, lease)
            else:
                job = self._follow(other, spec, queue, io, followed)
            follow = Follow(self.redis, job, spec.address, io)
            try:
                return follow.result(cancel, own=other is None, queue=queue), False
            except JobLost as exc:
                self.leases.give_up(job.id)  # should it be alive after all, it stops
                if other is None:
                    lost += 1
                    if lost > RETRIES:
                        raise RemoteError(
                            f"{exc}, {lost} times (killed or cut off from Redis); look at "
                            "the workers, then submit again"
                        ) from None
                io.log(f"executor: {str(exc).split(': ', 1)[-1]}; it runs again")
            except FleetError:
                raise  # our own trouble with Redis, not the job's
            except ExecutorError:
                if other is None or cancel.is_set():
                    raise
                io.log("executor: the job followed did not succeed; running the stage here")
            finally:
                if other is None:
                    self.leases.release(lease, job_id)
            looked = 0.0  # time has passed: look again before enqueueing

    def _ran_meanwhile(
        self, spec: JobSpec, key: str, env: str, layout: str, looked: float
    ) -> JobResult | None:
        """The run-cache's result for this work, should a job have finished it since the
        runner's lookup missed (only the Redis index is asked if that was a moment ago: the
        job indexed its run before it let go of the lease we now hold); its outputs
        fetched, as `lookup` does."""
        digest = self.resolve_image(spec.image)
        recent = time.monotonic() - looked <= RECHECK_AFTER
        entry = self.lookup(key, digest, env=env, layout=lambda: layout, index_only=recent)
        return None if entry is None else JobResult(spec.address, entry, digest, 0.0)

    def _follow(
        self, other: Any, spec: JobSpec, queue: Any, io: StageIO, followed: set[str]
    ) -> Any:
        io.log(f"executor: following job {other.id}, the same work submitted elsewhere")
        followed.add(other.id)
        if self.record is not None:
            self.record.enqueued(spec.address, other.id, queue.name, follows=True)
        return other

    def _enqueue(self, queue: Any, spec: JobSpec, job_id: str, lease: str) -> Any:
        self._enqueued.setdefault(spec.address, []).append(job_id)
        try:
            if self.record is not None:
                self.record.check(spec.address)  # cancelled from another shell
                self.record.enqueued(spec.address, job_id, queue.name)
            with redis_errors("submitting the job"):
                return queue.enqueue(
                    JOB_FUNCTION,
                    spec.to_dict(),
                    self.config.store_url,
                    job_id=job_id,
                    job_timeout=-1,  # the stage's own timeout (meta.executor.timeout) applies
                    result_ttl=EVENTS_TTL,
                    failure_ttl=EVENTS_TTL,
                    description=self.routes.description(spec),
                )
        except BaseException:
            self.leases.release(lease, job_id)
            raise

    def prestart(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> None:
        """Nothing to warm here: the worker that takes the job starts its container."""

    def discard(self, address: str) -> None:
        """Nothing was started early."""

    def close(self) -> None:
        self.store.close()
        self.redis.close()
