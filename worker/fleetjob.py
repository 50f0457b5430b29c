"""One fleet job: a stage run in a fresh workspace on this worker.

`run_job` gets a JSON job spec (validated field by field) and the URL of the store it was
submitted for, which must be the store this worker serves; what it asks for must be within
the worker's ceilings (`ceilings.Ceilings`). Its inputs are fetched into the worker's local
cache (least recently used evicted beyond a size limit), linked into a fresh workspace and
bind-mounted read-only into the container; the command runs in the Docker sandbox as in
`executor run` (never as root: a root worker hands the workspace to EXECUTOR_STAGE_USER or
nobody); the outputs go to the store, then the run-cache entry, if DVC's rule says the run
makes one, with the job's layout. Log lines and line starts go to a Redis stream the
coordinator relays; a cancel request in Redis stops the container. The job returns
`{"ok": true, "result": ...}` or `{"ok": false, "failure": ...}` (an error the coordinator
raises as its own), so RQ's own failures mean only a crash or a killed work horse.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from executor.confine import inside
from executor.errors import (
    ConfigError,
    ExecutorError,
    JobHandedOver,
    RefusedJob,
    RemoteError,
    StageCancelled,
)
from executor.fleet.keys import (
    IMAGES_KEY,
    RunIndex,
    cancel_key,
    is_job_id,
)
from executor.hashing.hasher import Hasher
from executor.jobresult import JobResult, failure_to_dict
from executor.jobspec import JobSpec
from executor.limits import Limits
from executor.pipeline.params import ParamsReader
from executor.redact import redact
from executor.runcache import RunCache, env_digest
from executor.settings import Settings
from executor.stageio import StageIO
from executor.store.base import ObjectStore
from executor.store.local import LocalStore
from executor.store.open import open_store
from executor.store.scratch import scratch_url
from worker import runjobs
from worker.config import worker_config
from worker.engines import job_sandbox
from worker.events import Events
from worker.job import container_request, execute, verify_inputs
from worker.jobdirs import PLACED_NAME, job_folder
from worker.jobwatch import WATCH_JOIN, JobWatch, fence_after
from worker.localcache import LocalCache, Placement
from worker.patientstore import PatientStore
from worker.sandbox.engine import Mount
from worker.sandbox.request import NOBODY, STAGE_USER, stage_user
from worker.stores import store_for

log = logging.getLogger(__name__)


def run_job(spec: Mapping[str, Any], store_url: str) -> dict[str, Any]:
    """The RQ job: run one stage; its result or its failure, as JSON.

    The job's heartbeat beats from its first moment until its outcome is sent (cleanup
    included), so a coordinator never takes a job busy finishing for a lost one. SIGTERM
    drains it (worker.jobwatch)."""
    from rq import get_current_job

    job = get_current_job()
    job_id = job.id if job is not None else f"local-{uuid.uuid4().hex}"
    if not is_job_id(job_id):  # StageJob refused it already; it names a folder below
        raise RefusedJob("refused job: its id is not a job id")
    redis = job.connection if job is not None else None
    address = str(spec.get("address", "")) if isinstance(spec, Mapping) else ""
    config = worker_config()
    stop_grace = Settings.from_env(config.env).stop_grace
    watch = JobWatch(job_id, config.drain_grace, fence_after=fence_after(stop_grace))
    watch.on_sigterm()
    watcher = watch.start(redis) if redis is not None else None
    bound = runjobs.bound_run(redis, job_id) if redis is not None else None
    try:
        if redis is not None and redis.exists(cancel_key(job_id)):
            raise StageCancelled(address)  # cancelled while it was being dequeued
        parsed = JobSpec.from_dict(spec)

        def run(given: JobSpec) -> JobResult:
            return _run(given, store_url, job_id, redis, watch.cancel)

        if bound is not None:  # a detached run's stage: done once, whoever asks for it
            outcome = runjobs.run_once(redis, job, bound, parsed, watch.cancel, run)
        else:
            outcome = {"ok": True, "result": run(parsed).to_dict()}
    except ExecutorError as exc:
        error: ExecutorError = exc
        if watch.handed_over.is_set():
            error = JobHandedOver(
                f"stage '{address}': its worker was stopped before the stage ended; "
                "another worker runs it"
            )
        log.info("job %s: %s", job_id, error)
        outcome = {"ok": False, "failure": failure_to_dict(error)}
    except Exception as exc:  # a worker's own trouble (disk full, a bug): said, not retried
        log.exception("job %s failed", job_id)
        failure = RemoteError(f"stage '{address}': the worker failed: {type(exc).__name__}: {exc}")
        outcome = {"ok": False, "failure": failure_to_dict(failure)}
    try:
        if redis is not None:  # the coordinator learns at once, without polling RQ
            Events(redis, job_id).end(json.dumps(outcome))
        if bound is not None:
            runjobs.finish(redis, job_id, bound, spec, outcome)
    finally:
        watch.done.set()
        if watcher is not None:
            watcher.join(WATCH_JOIN)
    return outcome


def _run(
    spec: JobSpec, store_url: str, job_id: str, redis: Any, cancel: threading.Event
) -> JobResult:
    config = worker_config()
    if store_url != config.store_url:
        ours, theirs = redact(config.store_url), redact(store_url)
        raise ConfigError(
            f"this worker serves the store {ours}, the job was submitted for "
            f"{theirs}: submit with --store {ours} or start workers for it"
        )
    # Refused before anything is fetched or started: what the job asks is over a ceiling.
    limits = config.ceilings.apply(Limits.from_meta(spec.executor_meta), spec.address)
    settings = Settings.from_env(config.env)
    store = store_for(store_url, settings)
    if not isinstance(store, LocalStore):  # a folder has no outages; a server may
        store = PatientStore(store, config.store_patience, stop=cancel)
    # Undone in reverse, whatever fails: the Docker client closed, then the job's folder
    # removed, then the lock that marked it live released.
    with ExitStack() as undo:
        jobdir = job_folder(config.home, job_id, undo)
        # The container is removed while the outputs go to the store; close() waits for it,
        # before the folder is walked.
        sandbox = job_sandbox(config, settings.stop_grace)
        undo.callback(sandbox.close)
        digest = sandbox.resolve_image(spec.image)
        if redis is not None:
            redis.hset(IMAGES_KEY, spec.image, digest)
        events = Events(redis, job_id, config.log_bytes) if redis is not None else None
        io = StageIO(cancel, events.log if events else None, events.line if events else None)
        cache = LocalCache(config.home / "cache", store, config.cache_bytes)
        workspace = jobdir / "ws"
        workspace.mkdir()
        placements, mounts = _placements(spec, jobdir, workspace, cache)
        with (
            Hasher(jobdir / "state.sqlite", root=workspace, within=(workspace,)) as hasher,
            cache.materialised(workspace, placements),
        ):
            hasher.remember([(workspace / p.relpath, p.md5) for p in placements])
            _prepare(spec, workspace, hasher, placements)
            hasher.fresh_after = time.time_ns()  # the stage adds no .dvcignore from here on
            request = container_request(
                spec, workspace, job_id=job_id, image_digest=digest, limits=limits,
                mounts=mounts, io=io,
            )  # fmt: skip
            request = replace(request, gpu_devices=config.ceilings.gpus.device_ids(limits.gpus))
            run_spec, out_store = _outputs_to(spec, store, job_id, undo)
            result = execute(
                run_spec,
                workspace,
                store=out_store,
                runcache=RunCache(out_store, trust_dvc_runs=settings.trust_dvc_runs),
                sandbox=sandbox,
                hasher=hasher,
                request=request,
                fixed_deps=True,
                layout=spec.layout(),
            )
        if spec.commit:
            _recorded(spec, result, store, redis)
        return result


def _outputs_to(
    spec: JobSpec, store: ObjectStore, job_id: str, undo: ExitStack
) -> tuple[JobSpec, ObjectStore]:
    """Where the job's outputs go, and the spec that stores them there. A `--no-commit`
    job's go to its scratch store (store.scratch), which its submitter empties once they
    are home, and make no run-cache entry or record anywhere: nothing of them stays in the
    fleet's store."""
    if spec.commit:
        return spec, store
    config = worker_config()
    scratch = open_store(scratch_url(config.store_url, job_id), Settings.from_env(config.env))
    undo.callback(scratch.close)
    if not isinstance(scratch, LocalStore):
        scratch = PatientStore(scratch, config.store_patience)
    return replace(spec, commit=True, cacheable=False), scratch


def _placements(
    spec: JobSpec, jobdir: Path, workspace: Path, cache: LocalCache
) -> tuple[list[Placement], tuple[Mount, ...]]:
    """Where each input's files go, and the mounts: the workspace, and over it each input
    read-only. Inputs are links to the local cache: a stage can neither chmod (EROFS) nor
    link out of (EXDEV) them. Persist outputs, and an input an output lies in, are
    writable copies of the stage's own."""
    writable = {i.path for i in spec.inputs if _written(i.path, spec)}
    placements = [
        Placement(p.relpath, p.md5, p.isexec, copy=i.path in writable)
        for i in spec.inputs
        for p in cache.expand(i.path, i.md5, i.isexec, i.executables)
    ]
    # Should this job die unseen, whoever removes its folder re-hashes these first.
    linked = sorted({p.md5 for p in placements if not p.copy})
    (jobdir / PLACED_NAME).write_text(json.dumps(linked))
    mounts = [Mount(source=str(workspace), target=str(workspace))]
    for given in spec.inputs:
        if given.path not in writable:
            where = str(inside(workspace, given.path))
            mounts.append(Mount(source=where, target=where, read_only=True))
    return placements, tuple(mounts)


def _prepare(spec: JobSpec, workspace: Path, hasher: Hasher, placements: list[Placement]) -> None:
    """The workspace as the repository has it: folders (empty ones too), inputs checked,
    wdir and output folders made, handed to the stage's user."""
    for given in spec.inputs:
        if given.md5.endswith(".dir"):
            for rel in ("", *given.folders):
                inside(workspace, posixpath.join(given.path, rel)).mkdir(
                    parents=True, exist_ok=True
                )
    verify_inputs(spec, workspace, hasher, ParamsReader(workspace))
    (workspace / spec.wdir).mkdir(parents=True, exist_ok=True)
    for out in spec.outs:  # a repository has these folders; a fresh workspace not
        (workspace / out.repo_path).parent.mkdir(parents=True, exist_ok=True)
    _hand_over(workspace, [workspace / p.relpath for p in placements if p.copy])


def _recorded(spec: JobSpec, result: JobResult, store: ObjectStore, redis: Any) -> None:
    """What the coordinator (and later lookups) confirm: a record of the run in the store
    even when DVC makes no entry; the run indexed in Redis when it does."""
    if result.run_key is None:
        RunCache(store).record(
            result.entry,
            image=spec.image,
            image_digest=result.image_digest,
            env=env_digest(spec.env),
            layout=spec.layout(),
        )
    elif redis is not None:
        try:
            RunIndex(redis).add(result.entry, spec.image, result.image_digest)
        except Exception as exc:  # the store has the entry: a later lookup indexes it
            log.warning("cannot index run %s in Redis: %s", result.run_key, exc)


def _hand_over(workspace: Path, copies: list[Path]) -> None:
    """A root worker's stages never run as root, nor as the owner of its cache: the
    workspace's folders and the stage's own copies (persist outputs) go to
    $EXECUTOR_STAGE_USER, else to nobody, which the sandbox then runs the stage as (the
    workspace's owner). Linked inputs stay root's, read-only."""
    if os.getuid() != 0:
        return
    user = stage_user(workspace) if os.environ.get(STAGE_USER) else NOBODY
    uid, gid = (int(n) for n in user.split(":"))
    for folder, _, _ in os.walk(workspace):
        os.chown(folder, uid, gid)
    for path in copies:
        os.chown(path, uid, gid)


def _written(path: str, spec: JobSpec) -> bool:
    """Whether the stage may write at `path` or inside it: a persist output's input, or an
    input an output lies in (or is)."""
    for out in spec.outs:
        if out.repo_path == path or out.repo_path.startswith(path.rstrip("/") + "/"):
            return True
    return False
