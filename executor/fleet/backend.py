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
from executor.dvcformat.entry import Entry, stage_key
from executor.errors import (
    ConfigError,
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
    IMAGES_KEY,
    JOB_FUNCTION,
    RunIndex,
    is_image_digest,
    lease_key,
    redis_errors,
)
from executor.fleet.leases import Leases
from executor.fleet.objects import FleetObjects
from executor.fleet.results import check_result
from executor.fleet.routing import Routes
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.runcache import LayoutOf, RunCache, RunHit, env_digest
from executor.stageio import StageIO
from executor.store.base import ObjectStore
from executor.store.open import open_store
from executor.workspace import Workspace

log = logging.getLogger(__name__)

RECHECK_AFTER = 1.0  # seconds after a lookup missed beyond which it is worth asking again
RETRIES = 2  # runs of a stage again after its worker was lost (a stage's own failure: none)


class FleetBackend:
    """Submits the stages that must run to the fleet and brings their outputs home."""

    def __init__(
        self, ws: Workspace, config: FleetConfig, jobs: int = 1, record: AttachedRun | None = None
    ) -> None:
        self.ws = ws
        self.record = record  # the submission's run in Redis, if it has one
        self.config = config
        self.redis = connect(config.redis_url, timeout=REDIS_TIMEOUT)
        self.routes = Routes(self.redis, config, ws.root)
        self.leases = Leases(self.redis, self.routes.default.serializer)
        self.store: ObjectStore = open_store(config.store_url, ws.settings, base=ws.root)
        self.runcache = RunCache(self.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self.local_runs = RunCache(ws.store)
        self.index = RunIndex(self.redis)
        self._image_names: dict[str, str] = {}  # digest -> the image name resolved to it
        self.objects = FleetObjects(ws, self.store)

    # -- Backend -------------------------------------------------------------------------------
    def resolve_image(self, image: str) -> str:
        """The digest the fleet's workers last resolved `image` to. Unknown until a worker
        has run it: lookups then miss, and the worker records the digest with its entry."""
        if image.startswith("sha256:"):
            self._image_names[image] = image
            return image
        with redis_errors("reading image digests"):
            digest = self.redis.hget(IMAGES_KEY, image)
        text = digest.decode("utf-8", "replace") if digest else ""
        if not is_image_digest(text):  # none yet, or not what a worker writes: unknown
            return f"unresolved:{image}"
        self._image_names[text] = image
        return text

    def lookup(
        self,
        key: str,
        image_digest: str,
        *,
        env: str | None = None,
        fetch: bool = True,
        layout: LayoutOf | None = None,
    ) -> Entry | None:
        """A usable entry of the fleet's run-cache, its outputs fetched into the local cache
        (without `fetch`, as --dry: found and checked only); `layout` as RunCache.check.

        The Redis index names candidate entries (saving a listing of the store); each is
        read and checked in the store, which alone decides. Entries the index lacks are
        looked for in the store and indexed."""
        # The digest came from Redis: the record must say a worker resolved this very
        # reference to it (a tag pointed at another image would not match).
        image = self._image_names.get(image_digest)
        with redis_errors("looking up the run-cache index"):
            values = self.index.values(key, image_digest)
        for value in values:
            hit = self.runcache.check(
                key, value, image_digest, env, image=image, layout=layout, objects=not fetch
            )
            if hit is not None and (not fetch or self._fetched(hit, env, layout)):
                return hit.entry
        hit = self.runcache.lookup(key, image_digest, env, image, layout)
        if hit is None or not fetch:
            return None if hit is None else hit.entry
        if not self._fetched(hit, env, layout):
            return None
        if hit.image_digest is not None and image is not None:
            with redis_errors("indexing a run"):
                self.index.add(hit.entry, image, image_digest)
        return hit.entry

    def _fetched(self, hit: RunHit, env: str | None, layout: LayoutOf | None) -> bool:
        """Fetch a hit's objects and record it locally; False if the store lacks some."""
        try:
            self.objects.fetch(hit.entry.get("outs", []))
        except (RemoteError, ExecutorError) as exc:
            log.warning("run %s/%s is not usable (%s)", hit.key, hit.value, exc)
            return False
        image = self._image_names.get(hit.image_digest or "")
        if image is not None and hit.image_digest is not None:
            # As after a run here: `executor run` and `dvc repro` find it in .dvc/cache.
            # With the layout it was checked against: a worker's run stays one.
            self.local_runs.save(
                hit.entry,
                image=image,
                image_digest=hit.image_digest,
                env=env,
                layout=layout() if layout is not None else None,
            )
        else:
            self.local_runs.save(hit.entry, image=None, image_digest=None)
        return True

    def execute(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> JobResult:
        if not spec.commit:
            raise ConfigError(
                f"stage '{spec.address}': --no-commit cannot be used with submit (outputs "
                "come back through the store); use `executor run --no-commit`"
            )
        looked = time.monotonic()  # the runner's lookup missed just now
        # Every output travels through the store, `cache: false` ones too.
        outs = tuple(replace(o, committed=True) for o in spec.outs)
        spec = replace(spec, outs=outs, inputs=self.objects.push_inputs(spec, io.cancel))
        result, confirmed = self._run(spec, io, looked)
        check_result(spec, result)
        if result.entry.get("params"):  # through JSON its int keys became strings: ours back
            result = replace(result, entry={**result.entry, "params": dict(spec.params)})
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
            other = self.leases.claim(lease, job_id, cancel, followed) if spec.cacheable else None
            if other is None:
                if cancel.is_set():
                    self.leases.release(lease, job_id)
                    raise StageCancelled(spec.address)
                if spec.cacheable and time.monotonic() - looked > RECHECK_AFTER:
                    ended = self._ran_meanwhile(spec, key, env, layout)
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

    def _ran_meanwhile(self, spec: JobSpec, key: str, env: str, layout: str) -> JobResult | None:
        """The run-cache's result for this work, should a job have finished it since the
        runner's lookup missed; its outputs fetched, as `lookup` does."""
        digest = self.resolve_image(spec.image)
        entry = self.lookup(key, digest, env=env, layout=lambda: layout)
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
