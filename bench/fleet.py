"""Fleet mode on one machine: `executor submit` against a redis-server and moto's S3 server on
127.0.0.1, with 1, 2 and 4 `executor-worker` processes, each a real process.

- A never-run fan pipeline submitted to W workers against `executor run -j W` here: the same
  containers on the same engine, so the ratio is the fleet's own cost (inputs and outputs
  through the store, the queue, the log stream). Jobs per second in the note and the plot.
- The latency from enqueue to a container starting, and `submit --detach` (fleetlatency).
- A second team: a fresh copy of the pipeline submitted after the fleet ran it, every stage a
  hit in the fleet's run-cache, against what DVC offers for the same: `dvc repro --pull`
  from the same bucket (it fetches run-cache entries and their outputs as it goes).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.firstrun import check_outputs
from bench.inputs import Inputs
from bench.measure import alternate, run
from bench.redisserver import RedisServer
from bench.results import Row, Target
from bench.s3server import MotoServer
from bench.tools import Tools, console

WORKERS = (1, 2, 4)
RATIO = Target("≤ 1.2× executor run -j W per job (1 and 2 workers)", "ratio", 1.2)
READY_TIMEOUT = 60.0


class Fleet:
    """The servers, a fresh bucket per `round()`, and the environment a submission needs."""

    def __init__(self, config: Config, inputs: Inputs) -> None:
        self.config, self.inputs = config, inputs
        self.s3 = MotoServer(config.env)
        self.redis = RedisServer(inputs.fresh("redis"))
        self.bucket = ""
        self.logs: list[Path] = []  # the last workers' logs

    def new_bucket(self) -> str:
        if self.bucket:
            self.s3.drop_bucket(self.bucket)
        self.bucket = self.s3.new_bucket()
        self.redis.flush()
        return self.bucket

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.config.env,
            "EXECUTOR_REDIS_URL": self.redis.url,
            "EXECUTOR_STORE": f"s3://{self.bucket}/fleet",
            "EXECUTOR_S3_ENDPOINT_URL": self.s3.endpoint,
        }

    @contextmanager
    def workers(self, count: int) -> Iterator[None]:
        """`count` workers serving the current bucket, registered before the block starts."""
        procs = []
        logs = self.logs = []
        for i in range(count):
            home = self.inputs.fresh(f"worker-{i}")
            logs.append(home.with_name(f"{home.name}.log"))
            with open(logs[-1], "wb") as log:  # the child keeps its own descriptor
                procs.append(
                    subprocess.Popen(
                        [*console("executor-worker", "worker"), "--dir", str(home)],
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while self.redis.workers() < count:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError("executor-worker did not register with Redis")
                time.sleep(0.05)
            yield
        finally:
            for proc in procs:
                proc.terminate()
            for proc, log in zip(procs, logs, strict=True):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(
                        "executor-worker did not stop within 60 s of SIGTERM; its log ends:\n"
                        + "\n".join(tail)
                    ) from None

    def close(self) -> None:
        if self.bucket:
            self.s3.drop_bucket(self.bucket)
        self.s3.stop()
        self.redis.stop()


class Copies:
    """Fresh copies of the never-run fan pipeline, the previous copy of each name removed."""

    def __init__(self, inputs: Inputs, n: int) -> None:
        self.inputs, self.n = inputs, n
        self.last: dict[str, Path] = {}

    def __call__(self, name: str) -> Path:
        if name in self.last:
            shutil.rmtree(self.last[name])
        template = self.inputs.template("fan", self.n)
        self.last[name] = pipelines.copy_repo(template, self.inputs.fresh(name))
        return self.last[name]


def submit(fleet: Fleet, repo: Path, *args: str) -> float:
    return run([*console("executor", "executor"), "submit", *args], repo, fleet.env).seconds


def first_runs(config: Config, tools: Tools, inputs: Inputs, fleet: Fleet, n: int) -> list[Row]:
    rows = []
    fresh = Copies(inputs, n)
    for count in WORKERS:

        def ours(count: int = count) -> float:
            repo = fresh("submit")
            fleet.new_bucket()  # nothing in the fleet's run-cache
            with fleet.workers(count):
                seconds = submit(fleet, repo)
            check_outputs(repo, "fan", n)
            return seconds

        def theirs(count: int = count) -> float:
            repo = fresh("run")
            seconds = tools.executor(repo, "run", "-j", str(count)).seconds
            check_outputs(repo, "fan", n)
            return seconds

        stats = alternate({"executor": ours, "peer": theirs}, config.slow_rounds, config.warmup)
        rate, run_rate = n / stats["executor"].median, n / stats["peer"].median
        rows.append(
            Row(
                "fleet",
                f"fan, {n} stages, {count} worker{'s' if count > 1 else ''}",
                f"executor run -j {count}",
                stats["executor"],
                stats["peer"],
                target=RATIO if count <= 2 else None,
                note=f"{rate:.1f} jobs/s through the fleet, "
                f"{run_rate:.1f} stages/s with run; worker start not counted",
                extra={"workers": count, "jobs_per_s": rate, "run_per_s": run_rate},
            )
        )
    return rows


def use_remote(repo: Path, bucket: str, endpoint: str) -> None:
    """Point DVC's default remote at the fleet's store."""
    config = repo / ".dvc" / "config"
    text = config.read_text().replace("[core]\n", "[core]\n    remote = fleet\n", 1)
    config.write_text(
        f"{text}['remote \"fleet\"']\n    url = s3://{bucket}/fleet\n    endpointurl = {endpoint}\n"
    )


def second_team(config: Config, tools: Tools, inputs: Inputs, fleet: Fleet, n: int) -> Row:
    fleet.new_bucket()
    with fleet.workers(2):
        first = pipelines.copy_repo(inputs.template("fan", n), inputs.fresh("first-team"))
        submit(fleet, first)
    fresh = Copies(inputs, n)

    def ours() -> float:
        repo = fresh("second-submit")
        seconds = submit(fleet, repo)  # no worker is running: every stage must be a hit
        check_outputs(repo, "fan", n)
        return seconds

    def theirs() -> float:
        repo = fresh("second-dvc")
        use_remote(repo, fleet.bucket, fleet.s3.endpoint)
        seconds = tools.dvc(repo, "repro", "--pull", "-q").seconds  # run-cache entries too
        check_outputs(repo, "fan", n)
        return seconds

    stats = alternate({"executor": ours, "peer": theirs}, config.rounds, config.warmup)
    return Row(
        "fleet",
        f"second team, fan of {n} stages, all in the fleet's run-cache",
        "dvc repro --pull",
        stats["executor"],
        stats["peer"],
        note="a fresh copy of the repository; no worker runs, every stage is checked out",
    )


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    from bench import fleetlatency

    n = 4 if config.quick else 40
    fleet = Fleet(config, inputs)
    try:
        return [
            *first_runs(config, tools, inputs, fleet, n),
            second_team(config, tools, inputs, fleet, n),
            fleetlatency.start_latency(config, inputs, fleet),
            fleetlatency.detached(config, inputs, fleet),
        ]
    finally:
        fleet.close()
