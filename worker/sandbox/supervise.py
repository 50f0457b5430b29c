"""A released container run to its outcome: the engine's exit awaited under cancel and the
deadline, the output drained, and the exit told apart (succeeded, failed, out of memory, or
a driver the image cannot run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from executor.errors import ConfigError, SandboxError
from worker.sandbox.calls import engine_call
from worker.sandbox.driver import DRIVER_SHELL
from worker.sandbox.logs import LogCollector
from worker.sandbox.prepared import Prepared
from worker.sandbox.request import SandboxOutcome, SandboxRequest, Status
from worker.sandbox.watch import Stopped, watch

if TYPE_CHECKING:
    from docker.api import APIClient

LOG_DRAIN = 5.0  # seconds the output stream may lag behind the container's exit


def supervise(
    api: APIClient,
    prepared: Prepared,
    kill: Callable[[str], None],
    *,
    grace: float,
    cancel_signal: str,
) -> SandboxOutcome:
    """Wait for the released container to exit, stopping it with `kill(signal)` on cancel or
    at its timeout, and describe how it ended."""
    request, created, collector = prepared.request, prepared.created, prepared.collector
    started = time.monotonic()
    timeout = request.limits.timeout
    code, stopped = watch(
        _exit_waiter(api, prepared),
        kill,
        cancel=request.io.cancel if request.io else None,
        deadline=started + timeout if timeout is not None else None,
        grace=grace,
        cancel_signal=cancel_signal,
    )
    duration = time.monotonic() - started
    _drain_output(prepared)
    if code in (126, 127) and not stopped and not collector.started:
        said = collector.tail.splitlines()[-1] if collector.tail else f"exit {code}"
        raise ConfigError(
            f"stage '{request.stage}': image '{request.image}' cannot run the sandbox's "
            f"driver, {DRIVER_SHELL}: {said}"
        )
    status = _status(api, prepared, code, stopped)
    failed_line = _failed_line(request, collector, code)
    return SandboxOutcome(status, code, failed_line, collector.tail, created.image_id, duration)


def _exit_waiter(api: APIClient, prepared: Prepared) -> Callable[[], int]:
    """The engine's wait for this container, as `watch` calls it."""
    exited: list[int] = []
    failed: list[SandboxError] = []

    def engine_wait() -> None:
        try:
            with engine_call("waiting for the container"):
                exited.append(int(api.wait(prepared.created.id)["StatusCode"]))
        except Exception as exc:  # in this thread: handed to wait() below
            failed.append(
                exc
                if isinstance(exc, SandboxError)
                else SandboxError(f"Docker engine: waiting for the container failed: {exc}")
            )
        finally:
            prepared.settled.set()

    def wait() -> int:
        """The engine's exit code, once the container has stopped. The driver's end marker
        is no proof of success: the stage can read it (/proc/1/cmdline) and print it.
        Only the engine's answer also means that no process of the stage still runs,
        so outputs are hashed after every writer is gone."""
        engine_wait()
        if exited:
            return exited[0]
        raise failed[0]

    return wait


def _drain_output(prepared: Prepared) -> None:
    """Let the output stream catch up with the exit; cut it off if it lags too long."""
    pump = prepared.pump
    if not prepared.collector.ended:  # all output is in once the end marker is: else let it drain
        pump.join(LOG_DRAIN)
        if pump.is_alive():
            prepared.stream.close()
            pump.join(1.0)


def _status(api: APIClient, prepared: Prepared, code: int, stopped: Stopped | None) -> Status:
    """How the container ended: as we stopped it, else by its exit code and the engine's
    out-of-memory flag."""
    status: Status = stopped or ("succeeded" if code == 0 else "failed")
    if status == "failed":
        with engine_call(f"inspecting container {prepared.request.name}"):
            if api.inspect_container(prepared.created.id)["State"].get("OOMKilled"):
                status = "out_of_memory"
    return status


def _failed_line(request: SandboxRequest, collector: LogCollector, code: int) -> str | None:
    """The line the driver reported failing, if the run failed and the marker names one."""
    if code != 0 and collector.failure is not None:
        index = collector.failure[0]
        if 1 <= index <= len(request.lines):
            return request.lines[index - 1]
    return None
