"""Run a stage's command lines in a hardened Docker container: the only module that imports docker.

Lifecycle: `create`, `attach`, `start`, `wait`,
and `remove(force=True)` in `finally`. Never `containers.run` (it pulls a missing image) and
never auto-remove (it races with logs and wait). docker-py errors become SandboxError here.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests.exceptions
from docker.client import DockerClient

from executor.errors import SandboxError
from executor.limits import Limits
from worker.sandbox.calls import engine_call
from worker.sandbox.config import TMP_SIZE, create_args, host_config
from worker.sandbox.config import image_shell as shell_of_image
from worker.sandbox.driver import DEFAULT_SHELL, Invocation
from worker.sandbox.hostpaths import HostPaths
from worker.sandbox.logs import LogCollector
from worker.sandbox.owner import LABEL_OWNER, LABEL_PID, owner_process_alive
from worker.sandbox.prepared import Created, Prepared, raw_socket
from worker.sandbox.reaper import owner_alive, reap
from worker.sandbox.request import (
    Mount,
    SandboxOutcome,
    SandboxRequest,
    check_image_name,
    check_request,
    stage_user,
)
from worker.sandbox.supervise import supervise

__all__ = [
    "DockerSandbox",
    "Limits",
    "Mount",
    "Prepared",
    "SandboxOutcome",
    "SandboxRequest",
    "owner_alive",
    "owner_process_alive",
    "reap",
    "stage_user",
]

log = logging.getLogger(__name__)


def _default_owner() -> str:
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class DockerSandbox:
    """Runs SandboxRequests on one Docker engine."""

    def __init__(
        self,
        client: DockerClient | None = None,
        *,
        stop_grace: float = 10.0,
        cancel_signal: str = "SIGINT",
        owner: str | None = None,
        remove_in_background: bool = False,
        tmp_size: int = TMP_SIZE,
        host_paths: HostPaths | None = None,
    ) -> None:
        self.client = client if client is not None else DockerClient()
        # A finished container's removal is off the stage's critical path; close() waits.
        self._remover = (
            ThreadPoolExecutor(1, thread_name_prefix="remove") if remove_in_background else None
        )
        self.api = self.client.api
        self.stop_grace = stop_grace
        self.cancel_signal = cancel_signal
        self.owner = owner or _default_owner()
        self.tmp_size = tmp_size  # bytes of each container's /tmp tmpfs
        self.host_paths = host_paths  # a worker in a container: its folder on the host
        self._shells: dict[str, str | None] = {}  # image id -> SHELL of its Env
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kw: Any) -> DockerSandbox:
        """A sandbox on the engine that DOCKER_HOST (and friends) in `env` point to.

        SandboxError at once if no engine answers there.
        """
        where = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = DockerClient.from_env(environment=dict(env), max_pool_size=64)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise SandboxError(
                f"no Docker engine is reachable at {where} ({exc}); "
                "start dockerd or set DOCKER_HOST"
            ) from exc
        return cls(client, **kw)

    def resolve_image(self, image: str) -> str:
        """The content digest (image id) that `image` names on this engine."""
        return self._image(image)[0]

    def _image(self, image: str) -> tuple[str, str | None]:
        check_image_name(image)
        with self._lock:
            if image in self._shells:  # an id: immutable, no need to ask again
                return image, self._shells[image]
        try:
            attrs = self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"image '{image}' is not present on this Docker engine and cannot be pulled "
                f"(no registry reachable); build it locally: docker build -t {image} . "
                "(or docker/build-image.sh busybox|python for the test images)"
            ) from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker engine: inspecting image '{image}' failed: {exc}") from exc
        image_id: str = attrs["Id"]
        with self._lock:
            self._shells[image_id] = shell_of_image(attrs)
        return image_id, self._shells[image_id]

    def create(self, request: SandboxRequest) -> Created:
        """Check the request and create its container, not started; the caller removes it."""
        user = check_request(request)
        image_id, image_shell = self._image(request.image)
        shell = request.shell or request.env.get("SHELL") or image_shell or DEFAULT_SHELL
        invocation = Invocation.build(shell, tuple(request.lines), request.workdir, self.stop_grace)
        args = create_args(
            request, image_id=image_id, user=user, invocation=invocation, owner=self.owner
        )
        with engine_call(f"creating container {request.name}"):
            args["host_config"] = self.api.create_host_config(
                **host_config(request, self.tmp_size, self.host_paths)
            )
            try:
                cid = self.api.create_container(**args)["Id"]
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                self._remove_stale(request)
                cid = self.api.create_container(**args)["Id"]
        return Created(cid, invocation, image_id)

    def _remove_stale(self, request: SandboxRequest) -> None:
        """Remove a leftover container of the same name, unless a live process still runs it."""
        existing = self.api.inspect_container(request.name)
        labels = existing["Config"].get("Labels") or {}
        if existing["State"].get("Running") and owner_alive(self.client)(labels):
            raise SandboxError(
                f"stage '{request.stage}': container {request.name} is already running "
                f"for {labels.get(LABEL_OWNER, 'someone else')} (pid {labels.get(LABEL_PID)})"
            )
        log.info("removing stale container %s", request.name)
        self._remove(request.name)

    def run(self, request: SandboxRequest) -> SandboxOutcome:
        """Run the request's lines to an outcome; the container is removed on every path."""
        if request.io is not None and request.io.cancel.is_set():
            check_request(request)
            digest = self.resolve_image(request.image)
            return SandboxOutcome("cancelled", 130, None, "", digest, 0.0)
        return self.release(self.prepare(request))

    def prepare(self, request: SandboxRequest) -> Prepared:
        """Create and start the request's container, its driver held at the gate.

        Nothing of the stage runs until `release`; `discard` removes it unused. This takes the
        engine's start-up cost (most of a trivial stage's time) off the critical path: the
        runner prepares the next stages' containers while their upstream stage still runs.
        If this process dies, the gate's stdin closes and the driver exits without running.
        """
        began = time.perf_counter()
        created = self.create(request)
        prepared: Prepared | None = None
        try:
            settled = threading.Event()
            collector = LogCollector(
                created.invocation,
                request.io.on_log if request.io else None,
                request.io.on_line if request.io else None,
                on_end=settled.set,
            )
            # Attached before start, like `docker run`: the log file's follow mode can drop a
            # final line that has no newline.
            with engine_call(f"attaching to container {request.name}"):
                stream = self.api.attach(created.id, stream=True, logs=False, demux=True)
                gate = self.api.attach_socket(created.id, params={"stdin": 1, "stream": 1})
            pump = threading.Thread(target=collector.pump, args=(stream,), daemon=True)
            pump.start()
            prepared = Prepared(
                request, created, collector, stream, pump, raw_socket(gate), settled
            )
            with engine_call(f"starting container {request.name}"):
                self.api.start(created.id)
            # A fleet's latency from enqueue to this moment, less the engine's part (bench).
            log.info(
                "container %s started at %.6f; creating and starting it took %.3f s",
                request.name, time.time(), time.perf_counter() - began,
            )  # fmt: skip
        except BaseException:
            if prepared is not None:
                prepared.close_gate()
            self._remove(created.id)  # which also ends the output stream and its pump
            raise
        return prepared

    def release(self, prepared: Prepared) -> SandboxOutcome:
        """Open the gate: run the lines to an outcome; the container is removed on every path."""
        request, created = prepared.request, prepared.created
        try:
            if request.io is not None and request.io.cancel.is_set():
                return SandboxOutcome("cancelled", 130, None, "", created.image_id, 0.0)
            prepared.open_gate()
            outcome = supervise(
                self.api,
                prepared,
                lambda signal: self._kill(created.id, signal),
                grace=self.stop_grace,
                cancel_signal=self.cancel_signal,
            )
        except BaseException:
            self._stop(created.id)  # e.g. RQ's job timeout: let the stage's traps run first
            raise
        finally:
            prepared.close_gate()
            if self._remover is not None:
                self._remover.submit(self._remove, created.id)
            else:
                self._remove(created.id)
        return outcome

    def close(self) -> None:
        """Wait until every container released so far is removed."""
        if self._remover is not None:
            self._remover.shutdown(wait=True)

    def discard(self, prepared: Prepared) -> None:
        """Remove a prepared container unused: its driver never got past the gate."""
        prepared.close_gate()
        self._remove(prepared.created.id)

    def _kill(self, cid: str, signal: str) -> None:
        try:
            self.api.kill(cid, signal=signal)
        except docker.errors.APIError as exc:  # it exited meanwhile (409) or is gone (404)
            log.debug("kill %s %s: %s", cid[:12], signal, exc)

    def _stop(self, cid: str) -> None:
        try:
            self.api.stop(cid, timeout=max(1, round(self.stop_grace)))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("could not stop container %s: %s", cid[:12], exc)

    def _remove(self, ref: str) -> None:
        for attempt in (1, 2):
            try:
                self.api.remove_container(ref, force=True)
                return
            except docker.errors.NotFound:
                return
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                if attempt == 2:
                    # Left to the reaper; the outcome is still worth returning.
                    log.error("could not remove container %s: %s", ref, exc)
