"""A worker in a container: which container it is, and where its folder is on the engine's host.

A stage's container bind-mounts the job's workspace by path, and the Docker engine reads that
path on its own host. A worker running on the host needs nothing. A worker in a container sees
its folder (EXECUTOR_WORKER_DIR) at one path, while the engine sees it at another
(EXECUTOR_WORKER_HOST_DIR). The mapping is checked at the worker's start with a probe
container that must read a fresh random file through it. A worker that would mount the wrong
folder, or none, refuses to start.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.client import DockerClient

from executor.errors import ConfigError
from worker.sandbox.calls import engine_call, inspect_container
from worker.sandbox.owner import LABEL, own_container_id, owner_labels

HOST_DIR = "EXECUTOR_WORKER_HOST_DIR"
PROBE_IMAGE = "EXECUTOR_WORKER_PROBE_IMAGE"


@dataclass(frozen=True)
class HostPaths:
    """The worker's folder as the worker sees it (`local`) and as the engine does (`host`)."""

    local: str
    host: str

    def to_host(self, path: str) -> str:
        """The engine's path of `path`: mapped when under the worker's folder, else as is."""
        path = posixpath.normpath(path)
        if path == self.local:
            return self.host
        if path.startswith(self.local.rstrip("/") + "/"):
            return posixpath.join(self.host, posixpath.relpath(path, self.local))
        return path


def engine_container(client: DockerClient, env: Mapping[str, str]) -> str | None:
    """This worker's container id, if the engine it drives knows it (not Docker in Docker,
    not a remote engine): only then may stage containers name it as their owner."""
    me = own_container_id(env)
    if me is None:
        return None
    return me if inspect_container(client, me, "inspecting the worker's own container") else None


def host_paths(client: DockerClient, root: Path, env: Mapping[str, str]) -> HostPaths | None:
    """Where the engine sees the worker's folder `root`: $EXECUTOR_WORKER_HOST_DIR, else, in
    a container, the source of the mount holding it (a host folder or a named volume);
    None when the paths are the same."""
    local = posixpath.normpath(str(root))
    host = env.get(HOST_DIR, "")
    if host and not posixpath.isabs(host):
        raise ConfigError(f"{HOST_DIR}={host!r} is not an absolute path on the engine's host")
    me = own_container_id(env)
    if not host and me is not None:
        host = _mount_source(client, me, local) or ""
    if not host or posixpath.normpath(host) == local:
        return None
    return HostPaths(local, posixpath.normpath(host))


def _mount_source(client: DockerClient, container_id: str, path: str) -> str | None:
    """The engine's path of `path` through the deepest mount of the container holding it."""
    found = inspect_container(client, container_id, "inspecting the worker's own container")
    if found is None:
        return None  # another engine's container (Docker in Docker)
    mounts = found.get("Mounts") or []
    best: tuple[str, str] | None = None
    for mount in mounts:
        target = posixpath.normpath(str(mount.get("Destination", "")))
        source = str(mount.get("Source", ""))
        inside = path == target or path.startswith(target.rstrip("/") + "/")
        if inside and source and (best is None or len(target) > len(best[0])):
            best = (target, source)
    if best is None:
        return None
    return posixpath.normpath(posixpath.join(best[1], posixpath.relpath(path, best[0])))


def check_host_paths(
    client: DockerClient, home: Path, paths: HostPaths | None, env: Mapping[str, str]
) -> None:
    """Prove that the engine sees the worker's folder where the mapping says: a probe container
    must read back a random file the worker wrote there. ConfigError, saying what to set,
    if it does not; nothing is checked for a worker on its engine's host with no mapping."""
    me = own_container_id(env)
    if paths is None and me is None:
        return
    image = env.get(PROBE_IMAGE) or (_image_of(client, me) if me else None)
    if not image:
        raise ConfigError(
            f"cannot check where the Docker engine sees {home}: set {PROBE_IMAGE} to an image "
            "present on the engine that has `cat` (e.g. the worker's own image)"
        )
    name = f".host-check-{secrets.token_hex(8)}"
    nonce = secrets.token_hex(16)
    (home / name).write_text(nonce)
    try:
        seen = _probe(client, image, paths.to_host(str(home)) if paths else str(home), name)
    finally:
        os.unlink(home / name)
    if seen != nonce:
        where = paths.host if paths else str(home)
        raise ConfigError(
            f"the worker's folder {home} is not at {where} on the Docker engine's host, so "
            f"stages would mount the wrong folder ({seen or 'nothing found there'}); mount a "
            f"host folder at {home} and set {HOST_DIR} to that folder's path on the host "
            f"(e.g. -v /srv/executor:{home} -e {HOST_DIR}=/srv/executor)"
        )


def _image_of(client: DockerClient, container_id: str) -> str | None:
    found = inspect_container(client, container_id, "inspecting the worker's own container")
    return None if found is None else str(found["Image"])  # None: another engine's container


def _probe(client: DockerClient, image: str, host_dir: str, name: str) -> str:
    """What `cat` reads of `name` in the engine's `host_dir` ('' if it cannot)."""
    api: Any = client.api
    config = api.create_host_config(
        mounts=[{"Type": "bind", "Source": host_dir, "Target": "/probe", "ReadOnly": True}],
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )
    with engine_call("starting the worker's folder probe"):
        try:
            cid = api.create_container(
                image,
                entrypoint=["cat"],
                command=[f"/probe/{name}"],
                host_config=config,
                labels={LABEL: "1", "executor.probe": "1", **owner_labels("probe")},
                user="0:0",
            )["Id"]
        except docker.errors.APIError as exc:  # e.g. the host folder does not exist there
            return f"the engine refused the mount: {exc.explanation or exc}"
        try:
            api.start(cid)
            api.wait(cid, timeout=60)
            out: bytes = api.logs(cid, stdout=True, stderr=False)
        except docker.errors.APIError as exc:
            return f"the engine refused the mount: {exc.explanation or exc}"
        finally:
            api.remove_container(cid, force=True)
    return out.decode("utf-8", "replace").strip()
