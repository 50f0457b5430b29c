"""What the sandbox is asked to run and what it reports, and the checks made before a container.

Everything here is checked on this side, so bad input fails in one line before the Docker engine
sees it. Mount sources are checked on the worker's filesystem, which assumes the same-path
convention (the daemon sees host paths where the worker does).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from executor.errors import ConfigError, WorkspaceError
from executor.limits import Limits
from executor.stageio import StageIO

Status = Literal["succeeded", "failed", "cancelled", "timed_out", "out_of_memory"]

NOBODY = "65534:65534"  # the user when there is no mount to take an owner from
STAGE_USER = "EXECUTOR_STAGE_USER"  # uid:gid of stages when the caller is root
ALLOW_ROOT = "EXECUTOR_ALLOW_ROOT_STAGES"  # root may run stages in a root-owned repository

# distribution/reference's grammar (IPv6 domains aside), or a bare image id.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(rf"(?:{_NAME})(?::{_TAG})?(?:@{_DIGEST})?|(?:sha256:)?[0-9a-f]{{64}}")
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,253}")
_USER = re.compile(r"\d+:\d+")


@dataclass(frozen=True)
class Mount:
    """A bind mount: `source` as the Docker daemon sees it, `target` inside the container."""

    source: str
    target: str
    read_only: bool = False
    # (st_dev, st_ino) of the source when the mount was asked for: a prepared container whose
    # file was replaced since (a rename onto it) is another container, never reused.
    ident: tuple[int, int] | None = None


@dataclass(frozen=True)
class SandboxRequest:
    """One stage run: the command lines and everything the container needs around them."""

    stage: str  # for messages, e.g. "train@1"
    name: str  # container name, e.g. "executor-<job id>"
    image: str  # tag, digest reference or image id
    lines: tuple[str, ...]  # each its own shell process; stop at the first failure
    workdir: str  # container path of the stage's wdir
    mounts: tuple[Mount, ...]
    env: Mapping[str, str]  # what the command sees, plus HOME=/tmp unless given
    labels: Mapping[str, str]  # merged with the sandbox's own labels
    limits: Limits = field(default_factory=Limits)
    user: str | None = None  # "uid:gid"; default: owner of the first mount's source
    io: StageIO | None = None  # cancel, and where output and line starts go
    shell: str | None = None  # default: SHELL from env, then the image's Env, then /bin/sh
    gpu_devices: tuple[str, ...] = ()  # the GPUs limits.gpus come from; none: any, by count

    def same_container(self, other: SandboxRequest) -> bool:
        """Whether `other` asks for the same container, whoever watches it."""

        def unwatched(request: SandboxRequest) -> SandboxRequest:
            return replace(request, io=None)

        return unwatched(self) == unwatched(other)


@dataclass(frozen=True)
class SandboxOutcome:
    """How a run ended. The container is gone by the time this exists (with the sandbox's
    remove_in_background, by the time its close() returns)."""

    status: Status
    exit_code: int
    failed_line: str | None  # the line that failed (or was running when stopped)
    log_tail: str  # the last lines of output
    image_digest: str  # the image id the container ran
    duration: float  # seconds from start to exit

    @property
    def message(self) -> str:
        """DVC's wording for a failure: "failed to run: LINE, exited with N"."""
        if self.status == "succeeded":
            return "succeeded"
        if self.status == "failed" and self.failed_line is not None:
            return f"failed to run: {self.failed_line}, exited with {self.exit_code}"
        return f"{self.status.replace('_', ' ')}, exited with {self.exit_code}"


def check_image_name(image: str) -> None:
    """ConfigError unless `image` is a well-formed reference or image id."""
    if not isinstance(image, str) or _IMAGE.fullmatch(image) is None:
        raise ConfigError(
            f"image {image!r} is not a valid image reference (expected e.g. 'name:tag', "
            "'registry:5000/team/name@sha256:…' or an image id)"
        )


def _no_nul(what: str, value: str) -> None:
    if "\0" in value:
        raise ConfigError(f"{what} contains a NUL byte: {value[:60]!r}")


def _host_path(request: SandboxRequest, container_path: str) -> str | None:
    """The host path of a container path, through the deepest mount holding it."""
    best: Mount | None = None
    for mount in request.mounts:
        target = posixpath.normpath(mount.target)
        inside = container_path == target or container_path.startswith(target.rstrip("/") + "/")
        if inside and (best is None or len(target) > len(posixpath.normpath(best.target))):
            best = mount
    if best is None:
        return None
    rel = posixpath.relpath(container_path, posixpath.normpath(best.target))
    return os.path.normpath(os.path.join(best.source, rel))


def check_request(request: SandboxRequest) -> str:
    """Raise ConfigError/WorkspaceError for bad input; return the "uid:gid" to run as."""
    where = f"stage '{request.stage}'"
    check_image_name(request.image)
    if _CONTAINER_NAME.fullmatch(request.name) is None:
        raise ConfigError(f"{where}: {request.name!r} is not a valid container name")
    if isinstance(request.lines, str):
        raise ConfigError(f"{where}: lines must be a tuple of command lines, not a string")
    for line in request.lines:
        _no_nul(f"{where}: command line", line)
    for key, value in request.env.items():
        if not key or "=" in key:
            raise ConfigError(f"{where}: {key!r} is not a valid environment variable name")
        _no_nul(f"{where}: environment variable {key}", f"{key}{value}")
    for key, value in request.labels.items():
        _no_nul(f"{where}: label {key}", f"{key}{value}")
    if request.shell is not None:
        if not request.shell:
            raise ConfigError(f"{where}: shell is empty")
        _no_nul(f"{where}: shell", request.shell)
    targets: set[str] = set()
    for mount in request.mounts:
        if not posixpath.isabs(mount.target) or not os.path.isabs(mount.source):
            raise ConfigError(f"{where}: mount {mount.source}:{mount.target} needs absolute paths")
        if not os.path.exists(mount.source):
            raise WorkspaceError(f"{where}: mount source {mount.source} does not exist")
        if posixpath.normpath(mount.target) in targets:
            raise ConfigError(f"{where}: two mounts at {mount.target}")
        targets.add(posixpath.normpath(mount.target))
    workdir = posixpath.normpath(request.workdir)
    if not posixpath.isabs(workdir):
        raise ConfigError(f"{where}: workdir {request.workdir!r} is not an absolute path")
    host = _host_path(request, workdir)
    if host is None:
        raise WorkspaceError(f"{where}: workdir {request.workdir} is not inside any mount")
    if not os.path.isdir(host):
        raise WorkspaceError(f"{where}: workdir {request.workdir} does not exist (host: {host})")
    if request.user is not None:
        if _USER.fullmatch(request.user) is None:
            raise ConfigError(f"{where}: user {request.user!r} must be numeric 'uid:gid'")
        return request.user
    if not request.mounts:
        return NOBODY
    st = os.stat(request.mounts[0].source)
    return f"{st.st_uid}:{st.st_gid}"


def stage_user(workspace: Path, env: Mapping[str, str] | None = None) -> str:
    """The "uid:gid" a stage runs as: the caller's, so its outputs are the caller's as with
    `dvc repro`. A root caller's stages run as $EXECUTOR_STAGE_USER if set, else as the
    owner of the workspace. Never as root, unless root owns the workspace and
    $EXECUTOR_ALLOW_ROOT_STAGES says so (then with no capability): ConfigError otherwise."""
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    env = os.environ if env is None else env
    configured = env.get(STAGE_USER, "")
    if configured:
        if _USER.fullmatch(configured) is None or configured.split(":")[0] == "0":
            raise ConfigError(
                f"{STAGE_USER}={configured!r} is not a non-root numeric 'uid:gid'; "
                "set it to e.g. 1000:1000 (a user that may write the repository)"
            )
        return configured
    st = os.stat(workspace)
    if st.st_uid == 0 and env.get(ALLOW_ROOT, "").lower() not in ("1", "true", "yes"):
        raise ConfigError(
            f"executor runs as root in {workspace}, which root owns: its stages would run as "
            f"root; set {STAGE_USER}=uid:gid to a user who may write it (outputs end up "
            f"root's), or {ALLOW_ROOT}=1 to run them as root with no capability"
        )
    return f"{st.st_uid}:{st.st_gid}"
