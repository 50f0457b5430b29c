"""The embedded backend of `executor run`: stages run in containers on this host's engine,
with the repository itself as the workspace and `.dvc/cache` as the store."""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import stat
import threading
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.coordinator.outputs import chown_outputs
from executor.dvcformat.entry import Entry
from executor.dvcformat.lockfile import LockWriter
from executor.errors import ConfigError, ExecutorError, StageOverstepped
from executor.jobspec import JobResult, JobSpec
from executor.limits import parse_memory
from executor.pipeline.model import repo_path
from executor.runcache import LayoutOf, RunCache
from executor.stageio import StageIO
from executor.workspace import Workspace
from worker.job import container_request, execute
from worker.sandbox.config import TMP_SIZE
from worker.sandbox.engine import (
    DockerSandbox,
    Limits,
    Mount,
    Prepared,
    SandboxOutcome,
    SandboxRequest,
    owner_process_alive,
    reap,
)

log = logging.getLogger(__name__)

# Read on the host by git, DVC or executor: read-only in every stage's container (a mount
# point can be neither written, renamed nor deleted). `.dvc` is mounted read-only whole.
TMP_SIZE_ENV = "EXECUTOR_TMP_SIZE"
ROOT_PROTECTED = (".git", ".dvcignore", ".executor.yaml")
DVCFILE_PROTECTED = ("dvc.yaml", "dvc.lock", ".dvcignore")  # beside every dvc.yaml


@dataclass(frozen=True)
class Guard:
    """What a stage's container must not change: read-only mounts over what exists, and the
    protected paths that did not exist (no mount can cover those without creating them on
    the host: they are checked once the container has stopped)."""

    mounts: tuple[Mount, ...]
    missing: tuple[str, ...]
    # Protected paths that exist, with their (device, inode): the folder holding one can still
    # be renamed (only the file is a mount point), and a new file put in its place.
    present: tuple[tuple[str, tuple[int, int]], ...] = ()


def _inside(path: str, folders: set[str]) -> bool:
    """Whether `path` lies inside one of `folders` (repo-relative, normalised)."""
    while "/" in path:
        path = posixpath.dirname(path)
        if path in folders:
            return True
    return False


def _ident(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


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


class RepoSandbox(DockerSandbox):
    """The sandbox of `executor run`: after each container, a protected path the stage
    created is removed and the stage fails (before anything is hashed or recorded)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.root = ""
        # id(request) -> (the request, protected paths absent when it was made)
        self.guards: dict[int, tuple[SandboxRequest, Guard]] = {}
        self.locks: LockWriter | None = None  # executor's own dvc.lock files

    def release(self, prepared: Prepared) -> SandboxOutcome:
        request = prepared.request
        try:
            outcome = super().release(prepared)
        finally:
            _, guard = self.guards.pop(id(request), (request, Guard((), ())))
        for rel, ident in guard.present:
            path = os.path.join(self.root, rel)
            try:
                moved = _ident(os.lstat(path)) != ident
            except OSError:
                moved = True
            if moved and not (self.locks is not None and self.locks.wrote(rel)):
                raise StageOverstepped(
                    request.stage, rel, "it was moved away or replaced: see `git status`"
                )
        for rel in guard.missing:
            path = os.path.join(self.root, rel)
            if not os.path.lexists(path) or (self.locks is not None and self.locks.wrote(rel)):
                continue
            # A dvc.lock executor wrote while the stage ran (after its container was made)
            # is put back as written; anything else the stage made goes.
            if self.locks is not None and self.locks.rewrite(rel):
                raise StageOverstepped(request.stage, rel, "executor's own was put back")
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            raise StageOverstepped(request.stage, rel)
        return outcome

    def discard(self, prepared: Prepared) -> None:
        self.guards.pop(id(prepared.request), None)
        super().discard(prepared)


# DVC's place for a remote's keys and passwords (`dvc remote modify --local`): no stage
# needs them, and any stage could copy them into an output.
SECRET_CONFIGS = ("config.local",)


def _hidden_secrets(dvc_dir: Path) -> tuple[Mount, ...]:
    """Empty files over the DVC config files that hold credentials, where they exist."""
    return tuple(
        Mount(source=os.devnull, target=str(dvc_dir / name), read_only=True)
        for name in SECRET_CONFIGS
        if (dvc_dir / name).is_file()
    )


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
            *_hidden_secrets(ws.dvc_dir),
        )
        self._protected: tuple[str, ...] = ROOT_PROTECTED + DVCFILE_PROTECTED[:2]
        self._outputs: tuple[tuple[str, str], ...] = ()  # (stage address, output repo path)
        self._sources: tuple[str, ...] = ()  # deps no stage produces (`dvc add`ed data too)

    def protect(self, stages: Iterable[Any], locks: LockWriter) -> None:
        """The pipeline's stages (their dvc.yaml files and outputs) and the writer of their
        dvc.lock files (one it wrote while a stage ran is no stage's doing)."""
        stages = list(stages)
        paths = set(ROOT_PROTECTED)
        for folder in {posixpath.dirname(s.dvcfile) for s in stages}:
            paths.update(posixpath.join(folder, name) for name in DVCFILE_PROTECTED)
        self._protected = tuple(sorted(paths))
        self._outputs = tuple(
            (s.address, s.repo_path(out.path)) for s in stages for out in s.outs
        )
        # Folders holding an output (or being one): never mounted read-only as a source.
        holding = {"."}
        for _, path in self._outputs:
            while path not in holding:
                holding.add(path)
                path = posixpath.dirname(path) or "."
        deps = {s.repo_path(dep) for s in stages for dep in s.deps}
        outs = {path for _, path in self._outputs}
        self._sources = tuple(
            sorted(d for d in deps if d not in holding and not _inside(d, outs))
        )
        self.sandbox.locks = locks

    def _guard(self, spec: JobSpec) -> Guard:
        """Read-only mounts over the protected paths that exist, and, where the cache links
        files (cache.type hardlink or symlink), over other stages' outputs: a hard link is
        the cache object itself, writable through the repository mount once chmodded.
        A few stats per stage: no walk."""
        root = str(self.ws.root)
        mounts: list[Mount] = []
        missing: list[str] = []
        present: list[tuple[str, tuple[int, int]]] = []
        candidates = list(self._protected)
        sources: frozenset[str] = frozenset()
        if self.ws.store.links.links_objects:
            own = {out.repo_path for out in spec.outs}
            candidates += [p for a, p in self._outputs if a != spec.address and p not in own]
            sources = frozenset(self._sources)
            candidates += self._sources
        # A mount shows the file as it was when the container was made. Only a stage that
        # declares the file a dep must see it as it is now (a dvc.lock that executor rewrote
        # meanwhile): its prepared container is then not reused. Tying every mount to its
        # inode would throw away every container prepared ahead at each dvc.lock write.
        deps = {repo_path(spec.wdir, str(d["path"])) for d in spec.deps}
        for rel in candidates:
            path = os.path.join(root, rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if rel in self._protected:
                    missing.append(rel)
                continue
            except NotADirectoryError:
                continue
            if os.path.islink(path):
                # A link's target is what a mount would cover: a symlink into the cache is
                # read-only already (.dvc); any other is the stage's own business.
                continue
            if rel in sources and stat.S_ISREG(st.st_mode) and st.st_nlink < 2:
                continue  # a source file of its own (no link to an object): DVC parity
            ident = _ident(st) if rel in deps else None
            mounts.append(Mount(path, path, read_only=True, ident=ident))
            if rel in self._protected:
                present.append((rel, _ident(st)))
        return Guard(tuple(mounts), tuple(missing), tuple(present))

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
        guard = self._guard(spec)
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
