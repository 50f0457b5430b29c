"""The fleet backend of `executor submit`: stages run as RQ jobs on workers elsewhere.

The coordinator still plans, looks up, locks and checks out here, exactly as `executor run`
does; only a stage that must really run leaves this host. For it, the stage's inputs (deps,
params files, persist outputs) are put into the fleet's store by content (what the store has
already is not sent again), the job spec is enqueued as JSON, the worker's log lines come back
through a Redis stream as they are printed, and the outputs come back from the store into the
repository's cache and workspace. A run-cache hit in the fleet's store is fetched the same way:
work another team submitted is checked out, not run.

Redis holds only what is in flight (the queue, log streams, cancel requests) and the image
digests workers last resolved: everything durable is in the store.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from executor.confine import inside
from executor.errors import ConfigError, ExecutorError, InfrastructureError, StageCancelled
from executor.jobspec import (
    Input,
    InvalidJobSpec,
    JobResult,
    JobSpec,
    RemoteError,
    failure_from_dict,
)
from executor.lockentry import Entry, build_entry, run_key, run_value
from executor.outputs import checkout_output
from executor.runcache import RunCache, out_objects
from executor.store.base import ObjectStore
from executor.store.local import OBJECT_MODE
from executor.store.open import open_store
from executor.store.pool import Quiet, each
from executor.workspace import Workspace

log = logging.getLogger(__name__)

JOB_FUNCTION = "worker.fleet.run_job"  # by dotted name: executor never imports worker
DEFAULT_QUEUE = "default"
IMAGES_KEY = "executor:images"  # hash: image reference -> the digest a worker last resolved
EVENTS_TTL = 24 * 3600
ENDED_EVENTS_TTL = 600  # a finished job's stream, for followers still draining it
LEASE_TTL = 7 * 24 * 3600  # a backstop: a lease is judged by its job's status
LEASE_GRACE = 30  # seconds a lease may name a job not enqueued yet
POLL = 0.25  # seconds between looks at a job's status while its stream is quiet
ABANDONED_CHECK = 2.0  # seconds between looks for jobs whose worker stopped its heartbeat
RETRIES = 2  # runs of a job again after its worker was lost (a stage's own failure: none)


LIVE = frozenset({"queued", "deferred", "scheduled", "started"})
# Delete a key only if it still holds the given value (a lease its holder releases).
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def events_key(job_id: str) -> str:
    """The Redis stream of a job's log lines, line starts and end."""
    return f"executor:job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    """Set to ask the worker running a job to stop its stage."""
    return f"executor:job:{job_id}:cancel"


def lease_key(key: str, image: str) -> str:
    """Held (by a job id) while a job runs the work of run-cache key `key` with `image`."""
    return f"executor:lease:{key}:{image}"


def index_key(key: str) -> str:
    """The Redis run-cache index of one key: `<value>:<image digest>` -> the entry (JSON)."""
    return f"executor:runs:{key}"


class RunIndex:
    """The run-cache entries workers wrote, indexed in Redis for lookups without the store.

    The store's `runs/` stays the durable truth: what the index lacks (entries `dvc push
    --run-cache` uploaded, an index lost with its Redis) is found there and indexed then.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def add(self, entry: Entry, image: str, image_digest: str) -> None:
        field = f"{run_value(entry)}:{image_digest}"
        doc = json.dumps({"entry": entry, "image": image})  # key order is dvc.lock's order
        self.redis.hset(index_key(run_key(entry)), field, doc)

    def find(self, key: str, image_digest: str) -> list[Entry]:
        """Entries under `key` made with `image_digest` (any order)."""
        found = []
        for field, doc in self.redis.hgetall(index_key(key)).items():
            if not field.decode().endswith(f":{image_digest}"):
                continue
            try:
                entry = json.loads(doc)["entry"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(entry, dict) and run_key(entry) == key:
                found.append(entry)
        return found


class FleetError(InfrastructureError):
    """Redis or the queue could not be used."""


class JobVanished(RemoteError):
    """A job's record left Redis while it was awaited."""


@dataclass(frozen=True)
class FleetConfig:
    """Where the fleet is: its Redis, its store and the queue to submit to."""

    redis_url: str
    store_url: str
    queue: str = DEFAULT_QUEUE

    @classmethod
    def from_options(
        cls, redis_url: str | None, store_url: str | None, queue: str | None, env: Mapping[str, str]
    ) -> FleetConfig:
        redis_url = redis_url or env.get("EXECUTOR_REDIS_URL")
        store_url = store_url or env.get("EXECUTOR_STORE")
        if not redis_url:
            raise ConfigError(
                "no fleet to submit to: pass --redis redis://HOST:PORT or set EXECUTOR_REDIS_URL"
            )
        if not store_url:
            raise ConfigError(
                "the fleet's store is not named: pass --store s3://bucket/prefix (the store "
                "the workers were started with) or set EXECUTOR_STORE"
            )
        return cls(redis_url, store_url, queue or env.get("EXECUTOR_QUEUE") or DEFAULT_QUEUE)


def connect(redis_url: str) -> Any:
    """A Redis client that answered a PING; FleetError (one line) if none answers."""
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise FleetError(
            f"cannot reach Redis at {redis_url} ({exc}); start it or fix --redis"
        ) from exc
    return client


class FleetBackend:
    """Submits the stages that must run to the fleet and brings their outputs home."""

    def __init__(self, ws: Workspace, config: FleetConfig, jobs: int = 1) -> None:
        from rq import Queue
        from rq.registry import StartedJobRegistry
        from rq.serializers import JSONSerializer

        self.ws = ws
        self.config = config
        self.redis = connect(config.redis_url)
        self.queue = Queue(config.queue, connection=self.redis, serializer=JSONSerializer)
        self.started = StartedJobRegistry(queue=self.queue)
        self.store: ObjectStore = open_store(config.store_url, ws.settings, base=ws.root)
        self.runcache = RunCache(self.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self.local_runs = RunCache(ws.store)
        self.index = RunIndex(self.redis)
        self._image_names: dict[str, str] = {}  # digest -> the image name resolved to it
        self._stored: set[str] = set()  # objects known to be in the store, this submission
        self.jobs = max(1, ws.settings.transfer_workers)

    # -- Backend -------------------------------------------------------------------------------
    def resolve_image(self, image: str) -> str:
        """The digest the fleet's workers last resolved `image` to. Unknown until a worker
        has run it: lookups then miss, and the worker records the digest with its entry."""
        if image.startswith("sha256:"):
            return image
        try:
            digest = self.redis.hget(IMAGES_KEY, image)
        except Exception as exc:  # redis.RedisError, without importing redis at module level
            raise FleetError(f"cannot read image digests from Redis: {exc}") from exc
        if not digest:
            return f"unresolved:{image}"
        self._image_names[digest.decode()] = image
        return str(digest.decode())

    def lookup(self, key: str, image_digest: str) -> Entry | None:
        """A usable entry of the fleet's run-cache, its outputs fetched into the local cache:
        from the Redis index if it has one whose objects can be fetched, else from the store."""
        with _redis_errors("looking up the run-cache index"):
            indexed = self.index.find(key, image_digest)
        for entry in indexed:
            try:
                self._fetch(entry.get("outs", []))
            except (RemoteError, ExecutorError) as exc:
                log.warning("indexed run %s is not usable (%s); looking in the store", key, exc)
                continue
            self._remember_run(entry, image_digest)
            return entry
        hit = self.runcache.lookup(key, image_digest)
        if hit is None:
            return None
        self._fetch(hit.entry.get("outs", []))
        if hit.image_digest is not None:
            image = self._image_names.get(image_digest)
            if image is not None:
                with _redis_errors("indexing a run"):
                    self.index.add(hit.entry, image, image_digest)
        self._remember_run(hit.entry, hit.image_digest)
        return hit.entry

    def _remember_run(self, entry: Entry, image_digest: str | None) -> None:
        """Record the entry in the local run-cache, as a run here would have."""
        image = self._image_names.get(image_digest or "")
        if image is not None and image_digest is not None:
            self.local_runs.save(entry, image=image, image_digest=image_digest)
        else:
            self.local_runs.save(entry, image=None, image_digest=None)

    def execute(
        self,
        spec: JobSpec,
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> JobResult:
        if not spec.commit:
            raise ConfigError(
                f"stage '{spec.address}': --no-commit cannot be used with submit (outputs "
                "come back through the store); use `executor run --no-commit`"
            )
        # Every output travels through the store, `cache: false` ones too.
        outs = tuple(replace(o, committed=True) for o in spec.outs)
        spec = replace(spec, outs=outs, inputs=self._push_inputs(spec))
        deps = [dict(d) for d in spec.deps]
        key = run_key(
            build_entry(spec.cmd, deps, spec.params, [{"path": o.path} for o in spec.outs])
        )
        lease = lease_key(key, spec.image)
        while True:
            job_id = f"executor-{uuid.uuid4().hex}"
            other = self._claim(lease, job_id) if spec.cacheable else None
            if other is None:
                job = self._enqueue(spec, job_id)
            else:
                on_log(f"executor: following job {other.id}, the same work submitted elsewhere")
                job = other
            try:
                result = self._await(job, spec, cancel, on_log, on_line, own=other is None)
            except (StageCancelled, JobVanished):
                if other is None or cancel.is_set():
                    raise
                continue  # its submitter cancelled it: run it for ourselves
            finally:
                if other is None:
                    self._release(lease, job_id)
            break
        self._fetch(result.entry.get("outs", []))
        cached = {o.path: o.cached for o in spec.outs}
        for item in result.entry.get("outs", []):
            rel = str(item["path"])
            path = posixpath.normpath(posixpath.join(spec.wdir, rel))
            checkout_output(
                self.ws.store,
                self.ws.root,
                path,
                item,
                self.ws.hasher,
                cached=cached.get(rel, True),
            )
        if spec.cacheable and result.run_key is not None:
            # As after a local run: `dvc repro` and `executor run` here find it too.
            self.local_runs.save(result.entry, image=spec.image, image_digest=result.image_digest)
        return result

    def _enqueue(self, spec: JobSpec, job_id: str) -> Any:
        from rq import Retry

        with _redis_errors("submitting the job"):
            return self.queue.enqueue(
                JOB_FUNCTION,
                spec.to_dict(),
                self.config.store_url,
                job_id=job_id,
                job_timeout=-1,  # the stage's own timeout (meta.executor.timeout) applies
                result_ttl=EVENTS_TTL,
                failure_ttl=EVENTS_TTL,
                description=f"stage {spec.address}",
                # A job whose worker was lost (killed, cut off) runs again elsewhere; a stage
                # that fails returns its failure and is not retried.
                retry=Retry(max=RETRIES),
            )

    def _claim(self, lease: str, job_id: str) -> Any:
        """Take the lease for `job_id` (None), or the job already holding it, alive."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        with _redis_errors("taking the in-flight lease"):
            while True:
                if self.redis.set(lease, job_id, nx=True, ex=LEASE_TTL):
                    return None
                holder = self.redis.get(lease)
                if holder is None:
                    continue  # released just now
                try:
                    job = Job.fetch(
                        holder.decode(), connection=self.redis, serializer=self.queue.serializer
                    )
                    status = job.get_status()
                except NoSuchJobError:
                    if LEASE_TTL - self.redis.ttl(lease) < LEASE_GRACE:
                        time.sleep(POLL)  # taken a moment ago; its job is being enqueued
                        continue
                    job, status = None, None
                if job is not None and status is not None and status.value in LIVE:
                    return job
                self._release(lease, holder.decode())  # its job ended without releasing it

    def _release(self, lease: str, job_id: str) -> None:
        """Drop the lease if `job_id` still holds it; keep the job's stream a little longer
        for followers still reading it."""
        with _redis_errors("releasing the in-flight lease"):
            self.redis.eval(RELEASE, 1, lease, job_id)
            self.redis.expire(events_key(job_id), ENDED_EVENTS_TTL)
            self.redis.delete(cancel_key(job_id))

    def prestart(
        self,
        spec: JobSpec,
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> None:
        """Nothing to warm here: the worker that takes the job starts its container."""

    def discard(self, address: str) -> None:
        """Nothing was started early."""

    def close(self) -> None:
        self.store.close()
        self.redis.close()

    # -- inputs and outputs ----------------------------------------------------------------------
    def _input_paths(self, spec: JobSpec) -> list[str]:
        """Workspace-relative paths a worker needs before the run: deps, params files and
        persist outputs (which the command changes in place)."""
        rels = [str(d["path"]) for d in spec.deps]
        rels += list(spec.params)
        paths = [posixpath.normpath(posixpath.join(spec.wdir, r)) for r in rels]
        paths += [o.repo_path for o in spec.outs if o.persist]
        return list(dict.fromkeys(p for p in paths if os.path.lexists(self.ws.root / p)))

    def _push_inputs(self, spec: JobSpec) -> tuple[Input, ...]:
        """Put every input's objects the store lacks into it; the inputs by content."""
        hasher = self.ws.hasher
        inputs: list[Input] = []
        files: dict[str, str] = {}  # md5 -> a file with that content
        manifests: dict[str, bytes] = {}
        for rel in self._input_paths(spec):
            path = inside(self.ws.root, rel)
            if path.is_dir():
                info, entries, manifest = hasher.hash_tree(path)
                manifests[info.md5] = manifest
                for e in entries:
                    files.setdefault(e.md5, os.path.join(path, e.relpath))
            else:
                info = hasher.hash_file(path)
                files.setdefault(info.md5, str(path))
            inputs.append(Input(rel, info.md5, info.isexec))
        needed = set(files) | set(manifests)
        present = (needed & self._stored) | self.store.exists_many(needed - self._stored)

        def upload(md5: str) -> None:
            self.store.put_file(md5, Path(files[md5]), check=False)

        failed: dict[str, str] = {}
        each([m for m in files if m not in present], upload, self.jobs, Quiet(), failed)
        for md5, data in manifests.items():  # a `.dir` after its files, as DVC pushes them
            if md5 not in present:
                self.store.put_bytes(md5, data, check=False)
        if not failed:
            self._stored.update(files, manifests)
        if failed:
            raise RemoteError(
                f"stage '{spec.address}': inputs could not be stored: "
                + "; ".join(sorted(failed.values())[:3])
            )
        return tuple(inputs)

    def _fetch(self, outs: Iterable[Mapping[str, Any]]) -> None:
        """Bring the objects of these lock items from the store into the local cache."""
        cache = self.ws.store
        needed = out_objects(self.store, [dict(o) for o in outs])
        if needed is None:
            raise RemoteError("a directory's manifest is missing from the fleet's store")
        missing = set(needed) - cache.exists_many(set(needed))

        def fetch(md5: str) -> None:
            self.store.get_file(md5, cache.object_path(md5), mode=OBJECT_MODE)

        failed: dict[str, str] = {}
        each(sorted(missing), fetch, self.jobs, Quiet(), failed)
        if failed:
            raise RemoteError(
                "outputs could not be fetched from the fleet's store: "
                + "; ".join(sorted(failed.values())[:3])
            )
        self._stored.update(needed)  # an upstream output is often a downstream input

    # -- waiting -----------------------------------------------------------------------------------
    def _await(
        self,
        job: Any,
        spec: JobSpec,
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
        *,
        own: bool = True,
    ) -> JobResult:
        """Relay the job's events until it ends; its result, or its error raised. Ctrl-C
        cancels our `own` job; it only stops us following another submission's."""
        from rq.exceptions import NoSuchJobError

        stream = events_key(job.id)
        last = "0-0"

        outcome: list[Any] = []  # the job's return value, as its last event carries it

        def relay(block: int | None) -> bool:
            """Pass on the events after `last`; whether there were any."""
            nonlocal last
            with _redis_errors("reading the job's output"):
                found = self.redis.xread({stream: last}, count=500, block=block)
            for _, events in found or []:
                for event_id, fields in events:
                    last = event_id
                    kind = fields.get(b"t")
                    value = fields.get(b"v", b"").decode("utf-8", "replace")
                    if kind == b"log":
                        on_log(value)
                    elif kind == b"line" and value.isdigit():
                        on_line(int(value))
                    elif kind == b"end":
                        with suppress(ValueError):  # RQ keeps the return value too
                            outcome.append(json.loads(value))
            return bool(found)

        cancelled = False
        previous = ""
        checked = time.monotonic()
        retries = RETRIES
        while True:
            if cancel.is_set() and not cancelled:
                if not own:
                    raise StageCancelled(spec.address)
                cancelled = True
                self._cancel(job)
            if relay(int(POLL * 1000)):
                if outcome:  # the job is done: no need to wait for RQ to say so
                    return _outcome(outcome[-1], job.id, spec.address)
                continue  # drain the stream before looking at the status again
            with _redis_errors("reading the job's status"):
                status = job.get_status(refresh=True)
            if status is None:
                raise JobVanished(f"stage '{spec.address}': its job {job.id} vanished from Redis")
            if status.value != previous or (
                status.value == "started" and time.monotonic() - checked > ABANDONED_CHECK
            ):
                checked = time.monotonic()
                with _redis_errors("looking for lost workers"):
                    self.started.cleanup()  # a job whose heartbeat stopped: retried or failed
                    try:
                        job.refresh()
                    except NoSuchJobError:
                        raise JobVanished(
                            f"stage '{spec.address}': its job {job.id} vanished from Redis"
                        ) from None
                    status = job.get_status(refresh=False)
                if job.retries_left is not None and job.retries_left < retries:
                    retries = job.retries_left
                    on_log("executor: the worker running this stage was lost; it runs again")
            previous = status.value
            if status.value in ("queued", "deferred", "scheduled", "started"):
                continue
            while relay(None):  # what was written just before it ended
                pass
            if status.value == "canceled":
                raise StageCancelled(spec.address)
            if status.value == "finished":
                return _job_result(job, spec.address)
            raise _job_failure(job, spec.address)

    def _cancel(self, job: Any) -> None:
        """Ask for the stage to stop: a queued job never starts; a running one is stopped
        by its worker (its container signalled and given its grace), reported cancelled."""
        with _redis_errors("cancelling the job"):
            self.redis.set(cancel_key(job.id), "1", ex=EVENTS_TTL)
            if job.get_status(refresh=True).value in ("queued", "deferred", "scheduled"):
                job.cancel()


def _job_result(job: Any, address: str) -> JobResult:
    return _outcome(job.return_value(refresh=True), job.id, address)


def _outcome(value: Any, job_id: str, address: str) -> JobResult:
    """The result a job returned, or the error it returned raised."""
    if not isinstance(value, Mapping):
        raise RemoteError(f"stage '{address}': its job {job_id} returned no result")
    if not value.get("ok"):
        failure = value.get("failure")
        raise failure_from_dict(failure if isinstance(failure, Mapping) else {}, address)
    try:
        return JobResult.from_dict(value.get("result") or {})
    except InvalidJobSpec as exc:
        raise RemoteError(f"stage '{address}': its job {job_id} returned {exc}") from None


def _job_failure(job: Any, address: str) -> ExecutorError:
    """A job the worker could not finish (a crash, a killed work horse)."""
    result = job.latest_result()
    text = (getattr(result, "exc_string", None) or "").strip()
    if "AbandonedJobError" in text:
        return RemoteError(
            f"stage '{address}': the workers running it were lost {RETRIES + 1} times (killed "
            "or cut off from Redis); look at the workers, then submit again"
        )
    last = text.splitlines()[-1] if text else "no reason recorded"
    return RemoteError(f"stage '{address}': its job {job.id} failed on the worker: {last}")


@contextmanager
def _redis_errors(doing: str) -> Iterator[None]:
    """Turn a Redis failure into a one-line FleetError naming what was being done."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise FleetError(f"Redis failed while {doing}: {exc}") from exc
