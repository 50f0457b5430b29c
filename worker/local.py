"""The embedded backend of `executor run`: stages run in containers on this host's engine,
with the repository itself as the workspace and `.dvc/cache` as the store."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping

from executor.jobspec import JobResult, JobSpec
from executor.runcache import RunCache
from executor.workspace import Workspace
from worker.job import execute
from worker.sandbox import DockerSandbox, Limits, Mount, owner_process_alive, reap


class LocalBackend:
    """Resolves images once per run and executes job specs in the repository."""

    def __init__(self, ws: Workspace, env: Mapping[str, str]) -> None:
        self.ws = ws
        self.sandbox = DockerSandbox.from_env(env, stop_grace=ws.settings.stop_grace)
        # Containers of an earlier `executor run` that was SIGKILLed: nothing else removes them.
        reap(self.sandbox.client, is_alive=owner_process_alive)
        self.runcache = RunCache(ws.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()
        root = str(ws.root)
        # The repository at its own path, so DVC_ROOT and any absolute path a command prints
        # are what `dvc repro` would give; `.dvc` read-only so a stage cannot touch the cache.
        self.mounts = (
            Mount(source=root, target=root),
            Mount(source=str(ws.dvc_dir), target=str(ws.dvc_dir), read_only=True),
        )

    def resolve_image(self, image: str) -> str:
        with self._lock:
            if image not in self._digests:
                self._digests[image] = self.sandbox.resolve_image(image)
            return self._digests[image]

    def execute(
        self,
        spec: JobSpec,
        cancel: threading.Event,
        on_log: Callable[[str], None],
        on_line: Callable[[int], None],
    ) -> JobResult:
        limits = Limits.from_meta(spec.executor_meta)
        return execute(
            spec,
            self.ws.root,
            store=self.ws.store,
            runcache=self.runcache,
            sandbox=self.sandbox,
            hasher=self.ws.hasher,
            job_id=uuid.uuid4().hex[:12],
            image_digest=self.resolve_image(spec.image),
            limits=limits,
            mounts=self.mounts,
            cancel=cancel,
            on_log=on_log,
            on_line=on_line,
        )
