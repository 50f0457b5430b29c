"""The hardened container a request becomes, as plain arguments for docker-py's low-level API.

docs/security.md says what each setting guards against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.limits import GPUS_ALL
from worker.sandbox.driver import Invocation
from worker.sandbox.hostpaths import HostPaths
from worker.sandbox.owner import LABEL, owner_labels
from worker.sandbox.request import SandboxRequest

LABEL_JOB = "executor.job"
LABEL_STAGE = "executor.stage"


def labels(request: SandboxRequest, owner: str) -> dict[str, str]:
    """The request's labels under the sandbox's own (which win)."""
    return {
        LABEL_JOB: request.name,
        **request.labels,
        LABEL: "1",
        LABEL_STAGE: request.stage,
        **owner_labels(owner),
    }


def environment(request: SandboxRequest) -> dict[str, str]:
    """The command's environment; TINI_KILL_PROCESS_GROUP is for tini and the driver drops it."""
    return {"HOME": "/tmp", **request.env, "TINI_KILL_PROCESS_GROUP": "1"}


TMP_SIZE = 1 << 30  # bytes of the /tmp tmpfs unless configured (EXECUTOR_TMP_SIZE)


def host_config(
    request: SandboxRequest, tmp_size: int = TMP_SIZE, host_paths: HostPaths | None = None
) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_host_config`. `/tmp` is a tmpfs of at most
    `tmp_size` bytes (its pages also count against the memory limit, if one is set). Mount
    sources are the worker's paths, given to the engine as `host_paths` maps them."""
    limits = request.limits
    to_host = host_paths.to_host if host_paths is not None else str
    config: dict[str, Any] = {
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        # Docker puts noexec,nosuid,nodev first; `exec` undoes noexec for tools run from /tmp.
        "tmpfs": {"/tmp": f"rw,exec,mode=1777,size={tmp_size}"},
        "ipc_mode": "private",
        "network_mode": "bridge" if limits.network else "none",
        "mounts": [
            {
                "Type": "bind",
                "Source": to_host(m.source),
                "Target": m.target,
                "ReadOnly": m.read_only,
            }
            for m in request.mounts
        ],
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "1"}},
    }
    if limits.pids is not None:
        config["pids_limit"] = limits.pids
    if limits.memory is not None:
        config["mem_limit"] = limits.memory
        config["memswap_limit"] = limits.memory  # equal: no swap on top
    if limits.cpus is not None:
        config["nano_cpus"] = round(limits.cpus * 1e9)
    if limits.gpus is not None and request.gpu_devices:  # a worker's own devices
        ids = list(request.gpu_devices)
        config["device_requests"] = [{"device_ids": ids, "capabilities": [["gpu"]]}]
    elif limits.gpus is not None:
        count = -1 if limits.gpus == GPUS_ALL else limits.gpus
        config["device_requests"] = [{"count": count, "capabilities": [["gpu"]]}]
    return config


def create_args(
    request: SandboxRequest, *, image_id: str, user: str, invocation: Invocation, owner: str
) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_container`, less `host_config`."""
    return {
        "image": image_id,
        "name": request.name,
        "entrypoint": list(invocation.entrypoint),
        "command": list(invocation.command),
        "working_dir": request.workdir,
        "user": user,
        "environment": environment(request),
        "labels": labels(request, owner),
        "tty": False,
        "stdin_open": True,  # the gate and watchdog; ends when the runner detaches (StdinOnce)
    }


def image_shell(image_attrs: Mapping[str, Any]) -> str | None:
    """SHELL from an image's Env, if set and non-empty."""
    for item in (image_attrs.get("Config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        if key == "SHELL" and value:
            return value
    return None
