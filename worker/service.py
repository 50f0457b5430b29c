"""The fleet worker: an RQ worker whose jobs run one stage each (`executor-worker`).

Only `run_job` runs (`stage_job_class`: no other function, callback, webhook or dependent
job, whatever a Redis writer enqueues). A job gets a JSON job spec (validated field by field)
and the URL of the store it was submitted for, which must be the store this worker serves;
what it asks for must be within the worker's ceilings (`limits.Ceilings`). Its inputs are
fetched into the worker's local cache (least recently used evicted beyond a size limit),
linked into a fresh workspace and bind-mounted read-only into the container; the command
runs in the Docker sandbox as in `executor run` (never as root: a root worker hands the
workspace to EXECUTOR_STAGE_USER or nobody); the outputs go to the store, then the run-cache
entry, if DVC's rule says the run makes one. Log lines and line starts go to a Redis
stream the coordinator relays; a cancel request in Redis stops the container. The job returns
`{"ok": true, "result": ...}` or `{"ok": false, "failure": ...}` (an error the coordinator
raises as its own), so RQ's own failures mean only a crash or a killed work horse.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import posixpath
import shutil
import stat
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from executor.confine import inside
from executor.errors import (
    ConfigError,
    ExecutorError,
    RefusedJob,
    RemoteError,
    StageCancelled,
)
from executor.fleet.backend import connect
from executor.fleet.keys import (
    ALIVE_EVERY,
    ALIVE_TTL,
    DEFAULT_QUEUE,
    EVENTS_TTL,
    IMAGES_KEY,
    JOB_FUNCTION,
    RunIndex,
    alive_key,
    cancel_key,
    events_key,
    is_job_id,
)
from executor.hashing import Hasher
from executor.jobspec import JobResult, JobSpec, failure_to_dict
from executor.limits import Ceilings, Limits, parse_memory
from executor.pipeline.params import ParamsReader
from executor.redact import redact
from executor.runcache import RunCache, env_digest
from executor.settings import Settings
from executor.stageio import StageIO
from executor.store.base import ObjectStore
from executor.store.open import open_store
from executor.terminal import shown
from worker.job import container_request, execute, verify_inputs
from worker.localcache import LocalCache, Placement, verify_objects
from worker.sandbox.engine import DockerSandbox, Mount, owner_process_alive, reap
from worker.sandbox.request import NOBODY, STAGE_USER, stage_user

log = logging.getLogger(__name__)

CANCEL_POLL = 0.25  # seconds between looks for a cancel request
WATCH_JOIN = 5.0  # seconds the job waits for its watcher to stop (it may be stuck on Redis)
STREAM_MAX = 20_000  # log events kept per job (a backstop behind the byte budget)
LOG_BYTES = 1 << 20  # default byte budget of a job's log stream (--log-bytes)
LOCK_NAME = "lock"  # in a job's folder, locked while the job lives
PLACED_NAME = "placed"  # in a job's folder: the local cache objects it linked into its workspace
YOUNG = 60  # seconds a job folder without its lock is left alone


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker serves: read once at its start, from its flags over its environment,
    and handed to each job (work horses are forked from the worker: see `worker_config`)."""

    store_url: str
    home: Path  # the local cache and the jobs' workspaces
    cache_bytes: int
    ceilings: Ceilings = field(default_factory=Ceilings)
    log_bytes: int = LOG_BYTES
    env: Mapping[str, str] = field(default_factory=dict)  # what it was read from

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerConfig:
        store = env.get("EXECUTOR_STORE")
        if not store:
            raise ConfigError("the worker serves no store: start it with --store or EXECUTOR_STORE")
        home = Path(env.get("EXECUTOR_WORKER_DIR") or Path.home() / ".cache" / "executor-worker")
        raw = env.get("EXECUTOR_WORKER_CACHE_SIZE") or "10g"
        try:
            size = parse_memory(raw, "cache size")
        except ConfigError:
            raise ConfigError(
                f"EXECUTOR_WORKER_CACHE_SIZE={raw!r} (--cache-size) is not a size; write e.g. 50g"
            ) from None
        raw = env.get("EXECUTOR_WORKER_LOG_BYTES") or str(LOG_BYTES)
        if not raw.isdigit():
            raise ConfigError(
                f"EXECUTOR_WORKER_LOG_BYTES={raw!r} (--log-bytes) is not a number of bytes"
            )
        return cls(store, home, size, Ceilings.from_env(env), int(raw), dict(env))


_config: WorkerConfig | None = None  # set by `main` before RQ forks any work horse


def worker_config() -> WorkerConfig:
    """This worker's configuration; outside a started worker (run_job called on its own),
    read from the environment."""
    return _config if _config is not None else WorkerConfig.from_env(os.environ)


class Events:
    """The job's side of its Redis stream. Log lines have a byte budget: past it the stream
    says once that it was cut, and the stage runs on (its failure still carries the end of
    its output, which the sandbox keeps apart)."""

    def __init__(self, redis: Any, job_id: str, budget: int = LOG_BYTES) -> None:
        self.redis = redis
        self.key = events_key(job_id)
        self.left = budget
        self.budget = budget

    def _add(self, kind: str, value: str) -> None:
        try:
            self.redis.xadd(self.key, {"t": kind, "v": value}, maxlen=STREAM_MAX, approximate=True)
            self.redis.expire(self.key, EVENTS_TTL)
        except Exception as exc:  # a lost log line must not fail the stage
            log.warning("cannot send a log line to Redis: %s", exc)

    def log(self, text: str) -> None:
        if self.left < 0:
            return
        self.left -= len(text.encode("utf-8", "replace")) + 1
        if self.left >= 0:
            self._add("log", text)
        else:
            self._add(
                "log",
                f"executor: the rest of this stage's log is not relayed (over the worker's "
                f"{self.budget} bytes, executor-worker --log-bytes); the stage runs on",
            )

    def line(self, index: int) -> None:
        self._add("line", str(index))

    def end(self, outcome: str) -> None:
        self._add("end", outcome)


def run_job(spec: Mapping[str, Any], store_url: str) -> dict[str, Any]:
    """The RQ job: run one stage; its result or its failure, as JSON.

    The job's heartbeat beats from its first moment until its outcome is sent (cleanup
    included), so a coordinator never takes a job busy finishing for a lost one."""
    from rq import get_current_job

    job = get_current_job()
    job_id = job.id if job is not None else f"local-{uuid.uuid4().hex}"
    if not is_job_id(job_id):  # StageJob refused it already; it names a folder below
        raise RefusedJob("refused job: its id is not a job id")
    redis = job.connection if job is not None else None
    address = str(spec.get("address", "")) if isinstance(spec, Mapping) else ""
    cancel, done = threading.Event(), threading.Event()
    watcher = None
    if redis is not None:
        watcher = threading.Thread(target=_watch, args=(redis, job_id, cancel, done), daemon=True)
        watcher.start()
    try:
        if redis is not None and redis.exists(cancel_key(job_id)):
            raise StageCancelled(address)  # cancelled while it was being dequeued
        result = _run(JobSpec.from_dict(spec), store_url, job_id, redis, cancel)
        outcome = {"ok": True, "result": result.to_dict()}
    except ExecutorError as exc:
        log.info("job %s: %s", job_id, exc)
        outcome = {"ok": False, "failure": failure_to_dict(exc)}
    except Exception as exc:  # a worker's own trouble (disk full, a bug): said, not retried
        log.exception("job %s failed", job_id)
        failure = RemoteError(f"stage '{address}': the worker failed: {type(exc).__name__}: {exc}")
        outcome = {"ok": False, "failure": failure_to_dict(failure)}
    try:
        if redis is not None:  # the coordinator learns at once, without polling RQ
            Events(redis, job_id).end(json.dumps(outcome))
    finally:
        done.set()
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
    jobs = config.home / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    jobdir = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=jobs))
    try:
        held = os.open(jobdir / ".lock-new", os.O_RDONLY | os.O_CREAT, 0o600)
    except BaseException:
        _remove_tree(jobdir)
        raise
    # Undone in reverse, whatever fails from here: the Docker client closed, then the
    # folder removed, then the lock that marked it live released.
    with ExitStack() as undo:
        undo.callback(os.close, held)
        undo.callback(_remove_tree, jobdir)
        fcntl.flock(held, fcntl.LOCK_EX)  # released when this process ends, however it ends
        os.rename(jobdir / ".lock-new", jobdir / LOCK_NAME)  # seen only once held
        sandbox = DockerSandbox.from_env(
            config.env, stop_grace=settings.stop_grace, tmp_size=config.ceilings.tmp_size
        )
        undo.callback(sandbox.close)
        digest = sandbox.resolve_image(spec.image)
        if redis is not None:
            redis.hset(IMAGES_KEY, spec.image, digest)
        events = Events(redis, job_id, config.log_bytes) if redis is not None else None
        cache = LocalCache(config.home / "cache", store, config.cache_bytes)
        workspace = jobdir / "ws"
        workspace.mkdir()
        # Inputs are links to the local cache, bind-mounted read-only: a stage cannot chmod
        # (EROFS) nor link out of (EXDEV) them. Persist outputs, and an input an output
        # lies in, are writable copies of the stage's own.
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
        with (
            Hasher(jobdir / "state.sqlite", root=workspace, within=(workspace,)) as hasher,
            cache.materialised(workspace, placements),
        ):
            hasher.remember([(workspace / p.relpath, p.md5) for p in placements])
            for given in spec.inputs:  # folders as the repository has them, empty ones too
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
            hasher.fresh_after = time.time_ns()  # the stage adds no .dvcignore from here on
            request = container_request(
                spec,
                workspace,
                job_id=job_id,
                image_digest=digest,
                limits=limits,
                mounts=tuple(mounts),
                io=StageIO(
                    cancel, events.log if events else None, events.line if events else None
                ),
            )
            result = execute(
                spec,
                workspace,
                store=store,
                runcache=RunCache(store, trust_dvc_runs=settings.trust_dvc_runs),
                sandbox=sandbox,
                hasher=hasher,
                request=request,
                fixed_deps=True,
                layout=spec.layout(),
            )
        if result.run_key is None:
            # Not cached (as DVC would not), but the coordinator confirms every result in
            # the store: the record says a worker produced exactly this entry.
            runs = RunCache(store)
            runs.record(
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
        return result


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


_stores: dict[str, ObjectStore] = {}


def store_for(url: str, settings: Settings) -> ObjectStore:
    """The store at `url`, made once per worker: built in the worker before it forks (see
    `main`), its S3 client (100+ ms to make) is inherited by every work horse. It has made no
    request there, so no connection is shared across the fork."""
    if url not in _stores:
        _stores[url] = open_store(url, settings)
    return _stores[url]


def _watch(redis: Any, job_id: str, cancel: threading.Event, done: threading.Event) -> None:
    """While the job lives: beat its heartbeat and look for a cancel request. The beat is
    left to expire, never deleted: the outcome is in the stream before it could lapse."""
    beat = 0.0
    while True:
        try:
            now = time.monotonic()
            if now - beat >= ALIVE_EVERY:
                redis.set(alive_key(job_id), "1", ex=ALIVE_TTL)
                beat = now
            if redis.exists(cancel_key(job_id)):
                cancel.set()
        except Exception as exc:  # Redis away for a moment: the stage goes on
            log.warning("cannot reach Redis from job %s: %s", job_id, exc)
        if done.wait(CANCEL_POLL):
            return


def _remove_tree(path: Path) -> None:
    """Remove a job's folder, with any read-only folders the stage left in it."""
    for folder, dirnames, _ in os.walk(path):  # top-down: each made usable before entered
        for name in dirnames:
            child = os.path.join(folder, name)
            if not os.path.islink(child):
                os.chmod(child, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


def remove_stale_workspaces(home: Path) -> None:
    """Remove the job folders no live job holds (those of killed work horses): each job
    holds an exclusive lock on its folder's `lock` file while it lives."""
    jobs = home / "jobs"
    for entry in sorted(jobs.iterdir()) if jobs.is_dir() else []:
        try:
            fd = os.open(entry / LOCK_NAME, os.O_RDONLY)
        except FileNotFoundError:
            # Its job takes the lock before the name appears: a folder without it is being
            # made this instant, or its job died while making it.
            if time.time() - entry.stat().st_mtime > YOUNG:
                _remove_tree(entry)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its job is running
        finally:
            os.close(fd)
        log.info("removing %s, the folder of a job that died", entry)
        _reverify(home, entry)
        _remove_tree(entry)


def _reverify(home: Path, jobdir: Path) -> None:
    """Hash again the local cache objects a dead job had linked into its workspace; drop
    those that changed (its stage could have reached them had a mount failed)."""
    try:
        md5s = json.loads((jobdir / PLACED_NAME).read_text())
    except (OSError, ValueError):
        return  # it died before placing anything
    if isinstance(md5s, list):
        dropped = verify_objects(home / "cache", [m for m in md5s if isinstance(m, str)])
        for md5 in dropped:
            log.warning("object %s changed while a job that died used it; dropped", md5)


_home_lock: list[int] = []  # held for the worker's life (and its work horses')


def claim_home(home: Path) -> None:
    """Make `home` this worker's alone: its local cache's eviction and use are decided in
    one process. ConfigError if another worker holds it."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "worker.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another executor-worker uses {home}; give each worker its own --dir"
        ) from None
    _home_lock.append(fd)


def refusal(job: Any) -> str | None:
    """Why `job` is not a stage job the worker may run, or None. Whoever can write to Redis
    can put any job on the queue: only `run_job(spec, store_url)` runs, with no callback
    (RQ imports and calls those by name), no webhook and no dependency."""
    if not isinstance(job.id, str) or not is_job_id(job.id):
        return "its id is not a job id"
    try:
        name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except Exception:  # a pickled job (never unpickled: the serializer is JSON), or garbage
        return "its data is not a JSON job"
    if name != JOB_FUNCTION or instance is not None:
        return f"it calls {str(name)[:100]!r}, not the stage entry point {JOB_FUNCTION}"
    if kwargs or len(args) != 2 or not isinstance(args[0], dict) or not isinstance(args[1], str):
        return "its arguments are not a job spec and a store URL"
    for kind in ("success", "failure", "stopped"):
        if getattr(job, f"_{kind}_callback_name", None):
            return f"it names an on_{kind} callback"
    if getattr(job, "webhooks", None):
        return "it names webhooks"
    if getattr(job, "_dependency_ids", None):
        return "it depends on other jobs"
    return None


def stage_job_class() -> type[Any]:
    """RQ's Job that resolves to `run_job` or to nothing: a refused job raises RefusedJob
    where RQ would import its function, and no callback or webhook is ever resolved, also
    where RQ's registries clean up after a job (a failure callback) on their own."""
    from rq.job import Job

    class StageJob(Job):
        @classmethod
        def fetch(cls, id: str, connection: Any = None, serializer: Any = None) -> Any:
            # RQ's worker quits on any error here (an id RQ itself rejects, a hash that does
            # not load): as "no such job", it is skipped and dropped by RQ's cleanup.
            from rq.exceptions import NoSuchJobError

            try:
                return super().fetch(id, connection=connection, serializer=serializer)
            except NoSuchJobError:
                raise
            except Exception as exc:
                log.error("refused job %r: it cannot be read (%s)", str(id)[:100], exc)
                raise NoSuchJobError(f"job {str(id)[:100]!r} cannot be read") from None

        @property
        def func(self) -> Any:
            problem = refusal(self)
            if problem is not None:
                log.error("refused job %r: %s", str(self.id)[:100], problem)
                raise RefusedJob(f"refused job: {problem}")
            return run_job

        @property
        def success_callback(self) -> None:
            return None

        @property
        def failure_callback(self) -> None:
            return None

        @property
        def stopped_callback(self) -> None:
            return None

        def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
            return None

    return StageJob


def stage_worker_class() -> type[Any]:
    """RQ's forking Worker, cleaning up after a work horse that was killed."""
    from rq import Worker

    class StageWorker(Worker):
        def subscribe(self) -> None:
            """RQ's commands over pubsub (kill-horse, stop-job, shutdown) are not taken: any
            Redis writer can send them, a killed horse skips executor's cleanup, and a
            stage is cancelled through executor's own key instead. (RQ's listener also held
            a warm shutdown for up to a minute with redis-py 8.)"""

        def unsubscribe(self) -> None:
            """Nothing subscribed."""

        def handle_work_horse_killed(
            self, job: Any, retpid: int, ret_val: int, rusage: Any
        ) -> None:
            # Its `finally` never ran: the folder is left, the container perhaps still
            # running (the stage can kill its own watchdog). The container goes first: the
            # folder is walked only once no process of the stage is left to swap a folder
            # for a link while it is walked.
            super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
            try:
                sandbox = DockerSandbox.from_env(worker_config().env)
                reap(sandbox.client, is_alive=owner_process_alive)
            except ExecutorError as exc:
                log.warning(
                    "cannot remove the killed job's container: %s; its folder is left for "
                    "the next start of a worker with this --dir",
                    exc,
                )
                return
            remove_stale_workspaces(worker_config().home)

    return StageWorker


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis", "redis_url", envvar="EXECUTOR_REDIS_URL", required=True,
              help="The fleet's Redis, e.g. redis://host:6379/0 (EXECUTOR_REDIS_URL).")  # fmt: skip
@click.option("--store", "store_url", envvar="EXECUTOR_STORE", required=True,
              help="The fleet's store, e.g. s3://bucket/prefix (EXECUTOR_STORE).")  # fmt: skip
@click.option("--queue", "queues", multiple=True, default=[DEFAULT_QUEUE], show_default=True,
              help="Queues to take jobs from, in order of priority (repeatable).")  # fmt: skip
@click.option("--dir", "home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The local cache and workspaces (EXECUTOR_WORKER_DIR).")  # fmt: skip
@click.option("--cache-size", default=None, help="Local cache limit, e.g. 50g (default 10g).")
@click.option("--max-memory", default=None,
              help="Most memory a job may ask for, e.g. 16g; also the limit of a job that "
                   "names none (EXECUTOR_WORKER_MAX_MEMORY; default: none).")  # fmt: skip
@click.option("--max-cpus", default=None,
              help="Most CPUs a job may ask for; also the limit of a job that names none "
                   "(EXECUTOR_WORKER_MAX_CPUS; default: none).")  # fmt: skip
@click.option(
    "--max-pids",
    default=None,
    help="Most processes a job may ask for (EXECUTOR_WORKER_MAX_PIDS; default 4096).",
)
@click.option(
    "--max-timeout",
    default=None,
    help="Longest timeout a job may ask for (EXECUTOR_WORKER_MAX_TIMEOUT; default 168h).",
)
@click.option("--default-timeout", default=None,
              help="Timeout of a job that names none (EXECUTOR_WORKER_DEFAULT_TIMEOUT; "
                   "default 24h).")  # fmt: skip
@click.option(
    "--allow-network",
    is_flag=True,
    default=None,
    help="Let jobs ask for network: true (EXECUTOR_WORKER_ALLOW_NETWORK; default no).",
)
@click.option(
    "--allow-gpus",
    is_flag=True,
    default=None,
    help="Let jobs ask for GPUs (EXECUTOR_WORKER_ALLOW_GPUS; default no).",
)
@click.option(
    "--tmp-size",
    default=None,
    help="Size of a stage's /tmp (EXECUTOR_WORKER_TMP_SIZE; default 1g).",
)
@click.option("--log-bytes", default=None,
              help="Bytes of a job's log relayed through Redis (EXECUTOR_WORKER_LOG_BYTES; "
                   "default 1048576); the rest is cut, the stage runs on.")  # fmt: skip
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def main(
    redis_url: str,
    store_url: str,
    queues: tuple[str, ...],
    home: Path | None,
    cache_size: str | None,
    burst: bool,
    **settings: Any,
) -> None:
    """Take stage jobs from the fleet's queues and run them in containers on this host."""
    from rq.serializers import JSONSerializer

    global _config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = {**os.environ, "EXECUTOR_STORE": store_url}  # flags over the environment
    if home is not None:
        env["EXECUTOR_WORKER_DIR"] = str(home.resolve())
    if cache_size is not None:
        env["EXECUTOR_WORKER_CACHE_SIZE"] = cache_size
    for name, value in settings.items():
        if value is not None and value is not False:
            env["EXECUTOR_WORKER_" + name.upper()] = "1" if value is True else str(value)
    try:
        config = _config = WorkerConfig.from_env(env)
        claim_home(config.home)
        redis = connect(redis_url)
        sandbox = DockerSandbox.from_env(config.env)
        # Containers of a worker on this host that was killed: nothing else removes them.
        reap(sandbox.client, is_alive=owner_process_alive)
        sandbox.close()
        remove_stale_workspaces(config.home)
        store = store_for(store_url, Settings.from_env(config.env))
        getattr(store, "client", None)  # S3: the client made now, once, before any fork
    except ExecutorError as exc:
        click.echo(f"ERROR: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_status)
    worker = stage_worker_class()(
        list(queues), connection=redis, serializer=JSONSerializer, job_class=stage_job_class()
    )
    worker.work(burst=burst, logging_level="INFO")
