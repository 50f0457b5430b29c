"""Sandbox overhead over a bare `docker run --rm IMAGE true`, measured side by side.

    python bench/sandbox_probe.py [--runs 30] [--image TAG]

Runs are interleaved (bare, sandbox, ...) so load on a shared machine hits both alike. The
sandbox run is a full `DockerSandbox.run` of the line `true`: checks, create with every hardening
option, attach, start, wait and remove, plus the driver shell around the line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.sandbox import DockerSandbox, Limits, Mount, SandboxRequest

BUILD = Path(__file__).resolve().parents[1] / "docker" / "build-image.sh"


def timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    image = (
        args.image
        or subprocess.run(
            [str(BUILD), "busybox"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    sandbox = DockerSandbox.from_env(os.environ)
    image_id = sandbox.resolve_image(image)
    workspace = tempfile.mkdtemp(prefix="executor-probe-")

    def request(name: str, ref: str) -> SandboxRequest:
        return SandboxRequest(
            stage="probe", name=name, image=ref, lines=("true",), workdir="/ws",
            mounts=(Mount(workspace, "/ws"),), env={"DVC_ROOT": "/ws", "DVC_STAGE": "probe"},
            labels={}, limits=Limits(),
        )  # fmt: skip

    def bare(*extra: str) -> None:
        subprocess.run(["docker", "run", "--rm", *extra, image, "true"], check=True)

    def sandboxed(ref: str) -> None:
        outcome = sandbox.run(request(f"executor-probe-{os.getpid()}", ref))
        assert outcome.status == "succeeded", outcome

    cases = {
        "docker run --rm IMAGE true": lambda: bare(),
        "docker run --rm --network none IMAGE true": lambda: bare("--network", "none"),
        "sandbox.run, image by tag": lambda: sandboxed(image),
        "sandbox.run, image by id (resolved once)": lambda: sandboxed(image_id),
    }
    for fn in cases.values():  # warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    base = statistics.median(times["docker run --rm IMAGE true"])
    print(f"{args.runs} interleaved runs of each, image {image}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(f"  {name:45s} median {median * 1000:6.0f} ms  p90 {p90 * 1000:6.0f} ms"
              f"  vs bare {(median - base) * 1000:+5.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
