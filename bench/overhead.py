"""Per-stage overhead over a bare `docker run --rm`, measured side by side.

Two views: the sandbox alone (`DockerSandbox.run` of `true`, in this process, against
`docker run --rm IMAGE true`), and `executor run`
end to end on a chain (`-j 1`, wall ÷ stages: start-up, hashing and dvc.lock counted against
executor) against `docker run --rm` of each stage's own command with the repository mounted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.firstrun import check_outputs
from bench.inputs import Inputs
from bench.measure import alternate, timed
from bench.results import Row, Target
from bench.tools import Tools

TARGET = Target("under 100 ms per stage over a bare docker run (median)", "difference", 0.1)


def sandbox_row(config: Config, tools: Tools, inputs: Inputs) -> Row:
    from worker.sandbox.engine import DockerSandbox, Limits, Mount, SandboxRequest

    sandbox = DockerSandbox.from_env(config.env)
    workspace = inputs.fresh("sandbox-ws")
    workspace.mkdir(parents=True)
    request = SandboxRequest(
        stage="bench",
        name=f"executor-bench-{os.getpid()}",
        image=config.image,
        lines=("true",),
        workdir="/ws",
        mounts=(Mount(str(workspace), "/ws"),),
        env={"DVC_ROOT": "/ws", "DVC_STAGE": "bench"},
        labels={},
        limits=Limits(),
    )

    def sandboxed() -> None:
        outcome = sandbox.run(request)
        if outcome.status != "succeeded":
            raise RuntimeError(f"sandbox.run of `true` did not succeed: {outcome}")

    cases = {
        "executor": lambda: timed(sandboxed),
        "peer": lambda: tools.docker("run", "--rm", config.image, "true").seconds,
    }
    stats = alternate(cases, config.sandbox_runs, config.warmup)
    return Row(
        "overhead",
        "sandbox.run of `true` (in-process)",
        "docker run --rm IMAGE true",
        stats["executor"],
        stats["peer"],
        target=TARGET,
        note="full DockerSandbox.run: checks, hardened create, attach, start, wait, remove",
    )


def stage_row(config: Config, tools: Tools, inputs: Inputs) -> Row:
    n, shape = config.overhead_stages, "chain"
    template = inputs.template(shape, n)
    last: list[Path] = []

    def fresh(name: str) -> Path:
        while last:
            shutil.rmtree(last.pop())
        last.append(pipelines.copy_repo(template, inputs.fresh(name)))
        return last[0]

    def ours() -> float:
        repo = fresh("overhead-x")
        seconds = tools.executor(repo, "run", "-j", "1").seconds
        check_outputs(repo, shape, n)
        return seconds / n

    def bare() -> float:
        repo = fresh("overhead-d")
        total = 0.0
        for i in range(n):
            dep, out = pipelines.stage_input(shape, i), pipelines.out_path(i)
            cmd = f"cat {dep} > {out} && echo {i} >> {out}"
            mount = f"{repo}:{repo}"
            total += tools.docker(
                "run", "--rm", "-v", mount, "-w", str(repo), config.image, "sh", "-c", cmd
            ).seconds
        check_outputs(repo, shape, n)
        return total / n

    stats = alternate({"executor": ours, "peer": bare}, min(config.rounds, 3), config.warmup)
    per = stats["executor"].median - stats["peer"].median
    return Row(
        "overhead",
        f"executor run per stage (chain of {n}, -j 1)",
        "docker run --rm -v REPO IMAGE sh -c CMD, per stage",
        stats["executor"],
        stats["peer"],
        target=TARGET,
        note=f"overhead {per * 1000:+.0f} ms per stage (median difference)",
    )


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    return [sandbox_row(config, tools, inputs), stage_row(config, tools, inputs)]
