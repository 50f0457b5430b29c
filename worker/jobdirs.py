"""The folders of a worker: its home (one worker each), and one folder per job, locked while
the job lives; the folders of jobs that died are re-verified and removed."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from executor.errors import ConfigError
from worker.localcache import verify_objects

log = logging.getLogger(__name__)

LOCK_NAME = "lock"  # in a job's folder, locked while the job lives
PLACED_NAME = "placed"  # in a job's folder: the local cache objects it linked into its workspace
YOUNG = 60  # seconds a job folder without its lock is left alone


def job_folder(home: Path, job_id: str, undo: ExitStack) -> Path:
    """A new folder for the job `job_id`, locked for as long as this process lives; `undo`
    removes it, then releases the lock that marked it live."""
    jobs = home / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    jobdir = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=jobs))
    try:
        held = os.open(jobdir / ".lock-new", os.O_RDONLY | os.O_CREAT, 0o600)
    except BaseException:
        remove_tree(jobdir)
        raise
    undo.callback(os.close, held)
    undo.callback(remove_tree, jobdir)
    fcntl.flock(held, fcntl.LOCK_EX)  # released when this process ends, however it ends
    os.rename(jobdir / ".lock-new", jobdir / LOCK_NAME)  # seen only once held
    return jobdir


def remove_tree(path: Path) -> None:
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
                remove_tree(entry)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its job is running
        finally:
            os.close(fd)
        log.info("removing %s, the folder of a job that died", entry)
        _reverify(home, entry)
        remove_tree(entry)


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


MAX_SLOTS = 1024  # workers sharing one --dir (--shared-dir)


def claim_home(home: Path, *, shared: bool = False) -> Path:
    """Make `home` this worker's alone: its local cache's eviction and use are decided in
    one process. ConfigError if another worker holds it. A `shared` home is several workers'
    (replicas given the same volume): each takes the first free `slot-N` folder in it, so a
    restarted worker finds its predecessor's cache. The folder claimed is returned."""
    if not shared:
        if not _lock_home(home):
            raise ConfigError(
                f"another executor-worker uses {home}; give each worker its own --dir "
                "(or --shared-dir, for a folder several workers share)"
            )
        return home
    for n in range(1, MAX_SLOTS + 1):
        if _lock_home(home / f"slot-{n}"):
            return home / f"slot-{n}"
    raise ConfigError(f"all {MAX_SLOTS} worker slots in {home} are taken; give workers a new --dir")


def _lock_home(home: Path) -> bool:
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "worker.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _home_lock.append(fd)
    return True
