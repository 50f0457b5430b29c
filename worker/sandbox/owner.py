"""Who started a container, as its labels say, and whether that owner still lives.

Every container executor starts names its owner: the host, the process (pid and start time,
as pids are reused), its pid namespace and, for a worker in a container that this engine
knows, that container. A container is judged by pid only where the pid means the same
process: the same host, pid namespace and container. Another container's is judged by the
engine (reaper.owner_alive); anything else is not ours to judge.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from executor.processes import pid_alive, process_start

LABEL = "executor"  # every sandbox container carries executor=1; the reaper filters on it
LABEL_OWNER = "executor.owner"
LABEL_HOST = "executor.host"
LABEL_PID = "executor.pid"  # the process that started it, for reaping after a SIGKILL
LABEL_PID_START = "executor.pid-start"  # when that process started (pids are reused)
LABEL_PID_NS = "executor.pid-ns"  # the pid namespace the pid belongs to
LABEL_CONTAINER = "executor.container"  # the engine's container of that process, if any

CONTAINER = "EXECUTOR_WORKER_CONTAINER"  # this worker's container id, if not found by itself
_CONTAINER_IN_MOUNTINFO = re.compile(r"/containers/([0-9a-f]{64})/")
_known: list[str] = []  # this process's container, once the engine has confirmed it (adopt)


def own_container_id(env: Mapping[str, str]) -> str | None:
    """This process's container id under Docker, or None on a host: $EXECUTOR_WORKER_CONTAINER,
    else the id in the engine's own bind mounts (/etc/hostname and friends)."""
    return env.get(CONTAINER, "") or _container_in_mountinfo()


@functools.cache
def _container_in_mountinfo() -> str | None:
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    found = _CONTAINER_IN_MOUNTINFO.search(mountinfo)
    return found.group(1) if found else None


def adopt(container_id: str | None) -> None:
    """Label this process's containers with `container_id` from now on: a container the
    engine that runs them knows (checked by the caller). None: no container label."""
    _known[:] = [container_id] if container_id else []


def known_container() -> str:
    return _known[0] if _known else ""


@functools.cache
def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def owner_labels(owner: str) -> dict[str, str]:
    """The labels naming this process as a container's owner."""
    return {
        LABEL_OWNER: owner,
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(os.getpid()),
        LABEL_PID_START: process_start(os.getpid()) or "",
        LABEL_PID_NS: _pid_namespace(),
        LABEL_CONTAINER: known_container(),
    }


def owner_process_alive(labels: Mapping[str, str]) -> bool:
    """For reaping on this host (or in this container): False when the process that started
    the container is gone. Another container's, host's or pid namespace's: True (not judged)."""
    if labels.get(LABEL_CONTAINER, "") != known_container():
        return True  # the reaper asks the engine about another container's (reaper.py)
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True  # another host's container: not ours to judge
    if labels.get(LABEL_PID_NS, _pid_namespace()) != _pid_namespace():
        return True  # its pid means another process than ours would (a shared hostname)
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return True
    started = labels.get(LABEL_PID_START)
    if started and process_start(pid) not in (started, None):
        return False  # the pid is another process's now
    return pid_alive(pid)
