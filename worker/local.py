"""The embedded backend of `executor run`: stages run in containers on this host's engine,
with the repository itself as the workspace and `.dvc/cache` as the store."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from executor.errors import ExecutorError
from executor.jobspec import JobResult, JobSpec
from executor.lockentry import Entry
from executor.runcache import RunCache
from executor.workspace import Workspace
from worker.job import container_request, execute
from worker.sandbox import (
    DockerSandbox,
    Limits,
    Mount,
    Prepared,
    SandboxRequest,
    owner_process_alive,
    reap,
)

log = logging.getLogger(__name__)


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
        self.sandbox = DockerSandbox.from_env(
            env, stop_grace=ws.settings.stop_grace, remove_in_background=True
        )
        # Containers of an earlier `executor run` that was SIGKILLed: nothing else removes them.
        reap(self.sandbox.client, is_alive=owner_process_alive)
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
        )

    def lookup(
        self, key: str, image_digest: str, *, env: str | None = None, fetch: bool = True
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
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> SandboxRequest:
        return container_request(
            spec,
            self.ws.root,
            job_id=job_id,
            image_digest=self.resolve_image(spec.image),
            limits=Limits.from_meta(spec.executor_meta),
            mounts=self.mounts,
            cancel=cancel,
            on_log=on_log,
            on_line=on_line,
        )

    def prestart(
        self,
        spec: JobSpec,
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> None:
        """Start the stage's container in the background, held at its gate until `execute`.

        Only the fields that shape the container are read from `spec`. Best effort: if it
        cannot be prepared now (e.g. its wdir is still to be made upstream), `execute` starts
        one itself and reports what is really wrong.
        """
        job_id = uuid.uuid4().hex[:12]
        try:
            request = self._request(spec, job_id, cancel, on_log, on_line)
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
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> JobResult:
        with self._lock:
            warm = self._warm.get(spec.address)
        job_id = warm.job_id if warm is not None else uuid.uuid4().hex[:12]
        request = self._request(spec, job_id, cancel, on_log, on_line)
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
