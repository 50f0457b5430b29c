"""The embedded backend of `executor run`: stages run in containers on this host's engine,
with the repository itself as the workspace and `.dvc/cache` as the store."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from executor.coordinator.outputs import chown_outputs
from executor.dvcformat.entry import Entry
from executor.dvcformat.lockfile import LockWriter
from executor.errors import ConfigError, ExecutorError
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.limits import parse_memory
from executor.runcache import LayoutOf, RunCache
from executor.stageio import StageIO
from executor.workspace import Workspace
from worker.job import container_request, execute
from worker.repoguard import RepoGuard, RepoSandbox, hidden_secrets
from worker.sandbox.config import TMP_SIZE
from worker.sandbox.engine import (
    Limits,
    Mount,
    Prepared,
    SandboxRequest,
    owner_alive,
    reap,
)
from worker.sandbox.request import stage_user

log = logging.getLogger(__name__)

TMP_SIZE_ENV = "EXECUTOR_TMP_SIZE"


def tmp_size(env: Mapping[str, str]) -> int:
    """Bytes of each stage's /tmp: EXECUTOR_TMP_SIZE (e.g. 512m, 4g), else 1g."""
    value = env.get(TMP_SIZE_ENV, "").strip()
    if not value:
        return TMP_SIZE
    try:
        return parse_memory(value)
    except ConfigError:
        raise ConfigError(
            f"{TMP_SIZE_ENV}={value!r} is not a size of at least 6m; write e.g. 512m or 4g"
        ) from None


@dataclass(frozen=True)
class Warm:
    """A stage's container being prepared ahead of its turn."""

    job_id: str
    request: SandboxRequest
    future: Future[Prepared]


class LocalBackend:
    """Resolves images once per run and executes job specs in the repository."""

    def __init__(self, ws: Workspace, env: Mapping[str, str], jobs: int = 1) -> None:
        self.ws = ws
        stage_user(ws.root, env)  # a root caller's stages need a user: said before any runs
        sandbox = RepoSandbox.from_env(
            env,
            stop_grace=ws.settings.stop_grace,
            remove_in_background=True,
            tmp_size=tmp_size(env),
        )
        assert isinstance(sandbox, RepoSandbox)
        sandbox.root = str(ws.root)
        self.sandbox: RepoSandbox = sandbox
        # Containers of an earlier `executor run` that was SIGKILLed: nothing else removes them.
        reap(self.sandbox.client, is_alive=owner_alive(self.sandbox.client))
        self.runcache = RunCache(ws.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()
        self._warm: dict[str, Warm] = {}  # stage address -> its container, being prepared
        self._preparers = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="prepare")
        root = str(ws.root)
        # The repository at its own path, so DVC_ROOT and any absolute path a command prints
        # are what `dvc repro` would give; `.dvc` read-only so a stage cannot touch the cache.
        self.mounts = (
            Mount(source=root, target=root),
            Mount(source=str(ws.dvc_dir), target=str(ws.dvc_dir), read_only=True),
            *hidden_secrets(ws.dvc_dir),
        )
        self.repo_guard = RepoGuard(ws, self.sandbox)

    def protect(self, stages: Iterable[Any], locks: LockWriter) -> None:
        """The pipeline's stages and the writer of their dvc.lock files (RepoGuard.protect)."""
        self.repo_guard.protect(stages, locks)

    def lookup(
        self,
        key: str,
        image_digest: str,
        *,
        env: str | None = None,
        fetch: bool = True,
        layout: LayoutOf | None = None,
    ) -> Entry | None:
        """Nowhere to look beyond the repository's own cache, which the runner has seen."""
        return None

    def resolve_image(self, image: str) -> str:
        with self._lock:
            if image not in self._digests:
                self._digests[image] = self.sandbox.resolve_image(image)
            return self._digests[image]

    def _request(
        self,
        spec: JobSpec,
        job_id: str,
        io: StageIO,
    ) -> SandboxRequest:
        guard = self.repo_guard.guard(spec)
        request = container_request(
            spec,
            self.ws.root,
            job_id=job_id,
            image_digest=self.resolve_image(spec.image),
            limits=Limits.from_meta(spec.executor_meta),
            mounts=self.mounts + guard.mounts,
            io=io,
        )
        self.sandbox.guards[id(request)] = (request, guard)
        return request

    def prestart(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> None:
        """Start the stage's container in the background, held at its gate until `execute`.

        Only the fields that shape the container are read from `spec`. Best effort: if it
        cannot be prepared now (e.g. its wdir is still to be made upstream), `execute` starts
        one itself and reports what is really wrong.
        """
        job_id = uuid.uuid4().hex[:12]
        try:
            request = self._request(spec, job_id, io)
        except (ExecutorError, OSError) as exc:
            log.debug("not preparing %s now: %s", spec.address, exc)
            return
        warm = Warm(job_id, request, self._preparers.submit(self.sandbox.prepare, request))
        try:
            with self._lock:
                previous = self._warm.pop(spec.address, None)
                self._warm[spec.address] = warm
        except BaseException:  # Ctrl-C right here: close() would not know of it
            self._drop(warm)
            raise
        if previous is not None:
            self._drop(previous)

    def discard(self, address: str) -> None:
        """The stage will not run (cached, unchanged, upstream failed): drop its container."""
        with self._lock:
            warm = self._warm.pop(address, None)
        if warm is not None:
            self._drop(warm)

    def _drop(self, warm: Warm) -> None:
        def remove() -> None:
            try:
                prepared = warm.future.result()  # submitted earlier: it runs before this
            except Exception:  # it never got a container (or prepare removed it)
                return
            self.sandbox.discard(prepared)

        self._preparers.submit(remove)

    def close(self) -> None:
        """Remove every container prepared and not used; wait until they are gone."""
        with self._lock:
            left = list(self._warm.values())
            self._warm.clear()
        for warm in left:
            self._drop(warm)
        self._preparers.shutdown(wait=True)
        self.sandbox.close()

    def _take(self, spec: JobSpec, request: SandboxRequest) -> Prepared | None:
        """The prepared container of this stage, if it is the container `request` asks for."""
        with self._lock:
            warm = self._warm.pop(spec.address, None)
        if warm is None:
            return None
        if warm.request.same_container(request):
            try:
                return warm.future.result()
            except (ExecutorError, OSError) as exc:
                log.debug("prepared container of %s failed: %s", spec.address, exc)
                return None
        self._drop(warm)
        return None

    def execute(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> JobResult:
        with self._lock:
            warm = self._warm.get(spec.address)
        job_id = warm.job_id if warm is not None else uuid.uuid4().hex[:12]
        request = self._request(spec, job_id, io)
        if warm is not None and not warm.request.same_container(request):
            # Another container (a read-only mount's file was replaced since): another name,
            # since the prepared one is still being removed.
            self.sandbox.guards.pop(id(request), None)
            request = self._request(spec, uuid.uuid4().hex[:12], io)
        try:
            return self._execute(spec, request)
        finally:
            self.sandbox.guards.pop(id(request), None)  # if a prepared container ran instead

    def _execute(self, spec: JobSpec, request: SandboxRequest) -> JobResult:
        try:
            return execute(
                spec,
                self.ws.root,
                store=self.ws.store,
                runcache=self.runcache,
                sandbox=self.sandbox,
                hasher=self.ws.hasher,
                request=request,
                prepared=self._take(spec, request),
            )
        finally:
            caller = (os.getuid(), os.getgid())
            if request.user != "{}:{}".format(*caller):  # a root caller's unprivileged stage
                chown_outputs(self.ws.root, (o.repo_path for o in spec.outs), *caller)
