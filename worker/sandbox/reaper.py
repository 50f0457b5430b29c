"""Containers left behind by a process that died (SIGKILL, a killed work horse): found by
their labels, removed when their owner is gone."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import docker.errors
from docker.client import DockerClient

from worker.sandbox.calls import engine_call
from worker.sandbox.config import LABEL, LABEL_CONTAINER, owner_process_alive
from worker.sandbox.hostpaths import own_container_id

log = logging.getLogger(__name__)


def owner_alive(client: DockerClient) -> Callable[[Mapping[str, str]], bool]:
    """Whether a container's owner lives: a process of this host or container by its pid
    (`owner_process_alive`); a worker in another container on this engine by that container
    running, so that a killed worker container's stages are reaped by the workers beside it."""
    me = own_container_id(os.environ) or ""

    def alive(labels: Mapping[str, str]) -> bool:
        theirs = labels.get(LABEL_CONTAINER, "")
        if not theirs or theirs == me:
            return owner_process_alive(labels)
        try:
            with engine_call("inspecting a stage's worker container"):
                state = client.api.inspect_container(theirs).get("State") or {}
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running")) and not state.get("Restarting")

    return alive


def reap(client: DockerClient, *, is_alive: Callable[[Mapping[str, str]], bool]) -> list[str]:
    """Remove labelled containers whose job is gone (by `is_alive` on their labels); their names."""
    removed: list[str] = []
    with engine_call("listing executor containers"):
        found = client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    for info in found:
        labels = info.get("Labels") or {}
        if is_alive(labels):
            continue
        name = (info.get("Names") or ["/" + info["Id"][:12]])[0].lstrip("/")
        try:
            client.api.remove_container(info["Id"], force=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            log.warning("reaper could not remove %s: %s", name, exc)
            continue
        log.info("reaped container %s (stage %s)", name, labels.get("executor.stage"))
        removed.append(name)
    return removed
