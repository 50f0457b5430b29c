"""Containers left behind by a process that died (SIGKILL, a killed work horse): found by
their labels, removed when their owner is gone."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import docker.errors
import requests.exceptions
from docker.client import DockerClient

from executor.errors import SandboxError
from worker.sandbox.calls import engine_call, inspect_container
from worker.sandbox.owner import LABEL, LABEL_CONTAINER, known_container, owner_process_alive

log = logging.getLogger(__name__)


def owner_alive(client: DockerClient) -> Callable[[Mapping[str, str]], bool]:
    """Whether a container's owner lives: a process of this host or container by its pid
    (`owner_process_alive`); a worker in another container on this engine by that container
    running, so that a killed or removed worker container's stages are reaped by the
    workers beside it."""
    me = known_container()

    def alive(labels: Mapping[str, str]) -> bool:
        theirs = labels.get(LABEL_CONTAINER, "")
        if not theirs or theirs == me:
            return owner_process_alive(labels)
        found = inspect_container(client, theirs, "inspecting a stage's worker container")
        if found is None:
            return False  # removed
        state = found.get("State") or {}
        return bool(state.get("Running")) and not state.get("Restarting")

    return alive


def reap(client: DockerClient, *, is_alive: Callable[[Mapping[str, str]], bool]) -> list[str]:
    """Remove labelled containers whose job is gone (by `is_alive` on their labels); their
    names. A container that cannot be judged or removed is logged and left for next time."""
    removed: list[str] = []
    with engine_call("listing executor containers"):
        found = client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    for info in found:
        labels = info.get("Labels") or {}
        name = (info.get("Names") or ["/" + info["Id"][:12]])[0].lstrip("/")
        try:
            if is_alive(labels):
                continue
        except SandboxError as exc:
            log.warning("reaper cannot tell whether %s's owner lives: %s", name, exc)
            continue
        try:
            client.api.remove_container(info["Id"], force=True)
        except docker.errors.NotFound:
            continue
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("reaper could not remove %s: %s", name, exc)
            continue
        log.info("reaped container %s (stage %s)", name, labels.get("executor.stage"))
        removed.append(name)
    return removed
