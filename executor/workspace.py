"""The user's repository as `executor run` sees it: root, `.dvc/cache`, state, lock, ignores."""

from __future__ import annotations

import fcntl
import os
import posixpath
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from executor.dvcformat.config import cache_dir, cache_types, core_flag
from executor.dvcformat.gitignore import add_entries
from executor.dvcformat.rwlock import live_holders
from executor.errors import UserError, WorkspaceError
from executor.hashing.hasher import Hasher
from executor.pipeline.model import Stage
from executor.settings import Settings
from executor.store.links import Links
from executor.store.local import LocalStore

DVC_GITIGNORE = "/config.local\n/tmp\n/cache\n"


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding `.dvc`, as DVC finds its root.

    Without one, executor refuses as `dvc repro` does: initialising is the user's choice
    (`dvc init`, `--subdir` or `--no-scm`), and a `.dvc/cache` made on the side would be picked
    up by `git add -A`.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise UserError(
        f"you are not inside of a DVC repository (no .dvc folder at or above {start}); "
        "run `dvc init` first"
    )


def check_targets(targets: Iterable[str], root: Path, stages: Iterable[Stage]) -> list[str]:
    """Targets (repo-relative addresses) as `dvc repro` takes them, minus those naming a
    dvc.yaml without stages (empty, or a matrix over an empty list: nothing to do, as DVC).

    `FILE:NAME` names stage NAME of FILE, which must be a dvc.yaml; a stage whose own name
    holds ':' can only be run with its dvc.yaml (or -P), as with DVC.
    """
    dvcfiles = {stage.dvcfile for stage in stages}
    collected: list[str] | None = None  # every dvc.yaml read, stages or not: walked on need
    kept = []
    for target in targets:
        dvcfile, colon, name = target.rpartition(":")
        if not colon and posixpath.basename(target) == "dvc.yaml":
            dvcfile, name = target, ""
        if colon or name == "":
            path = posixpath.normpath(dvcfile)
            if posixpath.basename(path) != "dvc.yaml":
                raise UserError(
                    f"bad target '{target}': '{dvcfile}' is not a dvc.yaml (FILE:NAME runs "
                    "stage NAME of the dvc.yaml FILE; a stage whose name holds ':' runs only "
                    "with its dvc.yaml as the target, or -P)"
                )
            if not (root / path).is_file():
                raise UserError(f"bad target '{target}': '{path}' does not exist")
            if not name and path not in dvcfiles:
                if collected is None:
                    from executor.pipeline.loader import find_dvcfiles

                    collected = find_dvcfiles(root)
                if path not in collected:
                    raise UserError(
                        f"bad target '{target}': '{path}' is not part of this DVC repository "
                        "(inside a nested DVC repository, an output, or ignored)"
                    )
                continue  # no stages in it: nothing to do
        kept.append(target)
    return kept


def target_from_cwd(target: str, root: Path, cwd: Path) -> str:
    """A `dvc repro`-style target, written relative to `cwd`, as a repo-relative address."""
    rel = os.path.relpath(cwd.resolve(), root)
    if rel == ".":
        return target
    dvcfile, colon, name = target.rpartition(":")
    if not colon:
        if posixpath.basename(target) == "dvc.yaml":
            return posixpath.normpath(posixpath.join(Path(rel).as_posix(), target))
        dvcfile, name = "dvc.yaml", target
    return f"{posixpath.normpath(posixpath.join(Path(rel).as_posix(), dvcfile))}:{name}"


def _flock(path: Path, busy: str) -> int:
    """An exclusive flock on `path` (created if absent), or WorkspaceError(busy)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkspaceError(f"{busy}; wait for it to finish") from None
    return fd


def _links(root: Path, cache: Path, dvc_dir: Path) -> Links:
    real_root, real_cache = os.path.realpath(root), os.path.realpath(cache)
    within = real_cache.startswith(real_root + os.sep)
    return Links(cache_types(dvc_dir), symlinks=within)


class Workspace:
    """A repository opened for one command; holds its exclusive lock while open."""

    def __init__(self, root: Path, settings: Settings, cwd: Path | None = None) -> None:
        self.root = root
        self.settings = settings
        self.cwd = (cwd or root).resolve()
        self.dvc_dir = root / ".dvc"
        self.cache_dir = cache_dir(self.dvc_dir)
        self.tmp_dir = self.dvc_dir / "tmp" / "executor"
        self.store = LocalStore(self.cache_dir, _links(root, self.cache_dir, self.dvc_dir))
        # The stages of this command run after this moment: none may add a .dvcignore.
        self.hasher = Hasher(
            self.tmp_dir / "state.sqlite",
            root=root,
            within=(root, self.cache_dir),
            fresh_after=time.time_ns(),
        )
        self._lock_fds: list[int] = []
        self._in_git: bool | None = None

    def __enter__(self) -> Workspace:
        self.prepare()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def prepare(self) -> None:
        """Create `.dvc/cache` and `.dvc/tmp` as `dvc init` would, and take the repo lock."""
        ignore = self.dvc_dir / ".gitignore"
        made = not (self.dvc_dir / "tmp").exists() or not self.cache_dir.exists()
        if made and not ignore.exists() and self.in_git():
            # Never a cache or tmp folder that `git add -A` would take (as `dvc init` has it).
            ignore.write_text(DVC_GITIGNORE)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock_fds.append(
                _flock(self.tmp_dir / "lock", f"another executor command is running in {self.root}")
            )
            # DVC's own repository lock (zc.lockfile takes a flock on it): while executor
            # works, `dvc gc` cannot delete objects it is about to use, nor `dvc repro`
            # rewrite dvc.lock under it.
            self._lock_fds.append(
                _flock(self.dvc_dir / "tmp" / "lock", f"DVC is running in {self.root}")
            )
            # The reverse: a `dvc repro` lets go of that lock while a stage's command runs,
            # holding only its per-path locks.
            guarded = not core_flag(self.dvc_dir, "hardlink_lock")
            holders = live_holders(self.dvc_dir / "tmp", guarded=guarded)
            if holders:
                first = holders[0]
                raise WorkspaceError(
                    f"DVC is running in {self.root}: '{first.cmd}' (pid {first.pid}) holds "
                    f"{first.path} in .dvc/tmp/rwlock; wait for it to finish"
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.hasher.close()
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds = []

    def dvc_stage(self, stage: Stage) -> str:
        """DVC_STAGE as DVC sets it: the name, or `<dvc.yaml relative to cwd>:name`."""
        rel = os.path.relpath(self.root / stage.dvcfile, self.cwd)
        return stage.name if rel == "dvc.yaml" else f"{Path(rel).as_posix()}:{stage.name}"

    def in_git(self) -> bool:
        """Whether DVC works with git here: a git work tree holds the repository (at its root,
        or above it after `dvc init --subdir`), and `core.no_scm` is not set."""
        if self._in_git is None:
            folders = (self.root, *self.root.parents)
            self._in_git = any((f / ".git").exists() for f in folders) and not core_flag(
                self.dvc_dir, "no_scm"
            )
        return self._in_git

    def ignore_outputs(self, stages: Iterable[Stage]) -> None:
        """Add each cached output to the .gitignore beside it, as DVC does in a git repo."""
        self.ignore_paths(
            stage.repo_path(out.path) for stage in stages for out in stage.outs if out.cache
        )

    def ignore_paths(self, paths: Iterable[str]) -> None:
        """Add each repository-relative output path to the .gitignore beside it (in git)."""
        if not self.in_git():
            return
        add_entries(self.root, paths)
