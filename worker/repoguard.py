"""What `executor run` keeps from its stages: the files git, DVC and executor read on the host
(read-only mounts over those that exist, a check after the container for those that did
not), DVC's secrets (hidden), and, with linking cache types, other stages' outputs and
`dvc add`ed data, which are cache objects themselves."""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.dvcformat.lockfile import LockWriter
from executor.errors import StageOverstepped
from executor.jobspec import JobSpec
from executor.pipeline.model import repo_path
from executor.workspace import Workspace
from worker.sandbox.engine import DockerSandbox, Mount, Prepared, SandboxOutcome, SandboxRequest

# Read on the host by git, DVC or executor: read-only in every stage's container (a mount
# point can be neither written, renamed nor deleted). `.dvc` is mounted read-only whole.
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


def hidden_secrets(dvc_dir: Path) -> tuple[Mount, ...]:
    """Empty files over the DVC config files that hold credentials, where they exist."""
    return tuple(
        Mount(source=os.devnull, target=str(dvc_dir / name), read_only=True)
        for name in SECRET_CONFIGS
        if (dvc_dir / name).is_file()
    )


class RepoGuard:
    """The guards of one repository's stages: `protect` learns the pipeline, `guard` gives
    one stage's mounts and checks."""

    def __init__(self, ws: Workspace, sandbox: RepoSandbox) -> None:
        self.ws = ws
        self.sandbox = sandbox
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
        self._outputs = tuple((s.address, s.repo_path(out.path)) for s in stages for out in s.outs)
        # Folders holding an output (or being one): never mounted read-only as a source.
        holding = {"."}
        for _, path in self._outputs:
            while path not in holding:
                holding.add(path)
                path = posixpath.dirname(path) or "."
        deps = {s.repo_path(dep) for s in stages for dep in s.deps}
        outs = {path for _, path in self._outputs}
        self._sources = tuple(sorted(d for d in deps if d not in holding and not _inside(d, outs)))
        self.sandbox.locks = locks

    def guard(self, spec: JobSpec) -> Guard:
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
