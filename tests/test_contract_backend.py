"""One contract for every Backend (executor.coordinator.types): the local backend of
`executor run` (worker.local.LocalBackend, loaded by name as the CLI loads it) and the fleet
backend of `executor submit` (executor.fleet.FleetBackend, with a real redis-server, moto's
S3 server over HTTP and a real `executor-worker` process). Both run on the machine's Docker
engine; each test gets a small repository of its own, opened as the CLI opens one.

Where the two differ by design, the adapter says so (`Side`): a fleet knows an image's
digest only once a worker resolved it, starts nothing early, finds runs of other
repositories (its store) and records the job's layout with a run."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from executor.coordinator.inputs import layout_in
from executor.coordinator.types import Backend, load_backend
from executor.dvcformat.entry import build_entry, stage_key
from executor.errors import StageCancelled, StageFailed
from executor.jobresult import JobResult
from executor.jobspec import JobSpec, OutRequest
from executor.runcache import RunCache, env_digest
from executor.settings import Settings
from executor.stageio import StageIO
from executor.workspace import Workspace
from tests.fixtures.fleet import Fleet

FILES = {"in.txt": "x\n"}
IN_MD5 = hashlib.md5(b"x\n").hexdigest()
DEP = {"path": "in.txt", "hash": "md5", "md5": IN_MD5, "size": 2}
STOP_GRACE = 3.0  # seconds from the cancel signal to SIGKILL (the fleet's worker has the same)
WAIT = 120.0  # seconds any awaited condition may take on a loaded machine


@dataclass
class Opened:
    root: Path
    ws: Workspace
    backend: Backend
    closed: bool = False

    def close(self) -> None:
        """Close the backend (once), as the CLI does when a command ends."""
        if not self.closed:
            self.closed = True
            self.backend.close()


@dataclass
class Side:
    """A backend around a repository, and what its kind of backend promises."""

    kind: str
    image: str
    open: Callable[[str], Opened]  # another repository (same files) with its own backend
    containers: Callable[[str], list[str]]  # names of the containers of a stage address
    log: Callable[[], str]  # what the fleet's worker printed, for failure messages
    resolves_before_run: bool  # resolve_image knows the digest before any stage ran
    prestarts: bool  # prestart really starts a container ahead
    shares_runs: bool  # lookup finds runs made in other repositories
    records_layout: bool  # a run is found again only for the same layout (a worker's run)
    repos: list[Opened] = field(default_factory=list)

    @property
    def here(self) -> Opened:
        return self.repos[0]


@pytest.fixture(params=["local", "fleet"])
def side(
    request: pytest.FixtureRequest,
    make_repo: Callable[..., Path],
    busybox_image: str,
    docker_client: Any,
    no_leftover_containers: None,
) -> Iterator[Side]:
    factory: Callable[[Workspace], Backend]
    log: Callable[[], str] = lambda: ""  # noqa: E731
    if request.param == "local":
        settings = Settings(stop_grace=STOP_GRACE)

        def factory(ws: Workspace) -> Backend:
            return load_backend(ws, os.environ, 2)  # as `executor run` does
    else:
        from executor.fleet import FleetBackend, FleetConfig

        the_fleet: Fleet = request.getfixturevalue("fleet")
        bucket = request.getfixturevalue("s3_bucket")
        settings = Settings(stop_grace=STOP_GRACE, s3_endpoint_url=bucket.endpoint)
        config = FleetConfig(the_fleet.redis_url, the_fleet.store_url)
        log = the_fleet.worker_log

        def factory(ws: Workspace) -> Backend:
            return FleetBackend(ws, config, 2)  # as `executor submit` does

    def containers(address: str) -> list[str]:
        found = docker_client.containers.list(
            all=True, filters={"label": f"executor.stage={address}"}, ignore_removed=True
        )
        return sorted(c.name for c in found)

    fleet_side = request.param == "fleet"
    made = Side(
        kind=request.param,
        image=busybox_image,
        open=lambda name: _open(made, make_repo(FILES, name), settings, factory),
        containers=containers,
        log=log,
        resolves_before_run=not fleet_side,
        prestarts=not fleet_side,
        shares_runs=fleet_side,
        records_layout=fleet_side,
    )
    try:
        made.open("here")
        yield made
    finally:
        for opened in reversed(made.repos):
            try:
                opened.close()
            finally:
                opened.ws.close()


def _open(
    side: Side, root: Path, settings: Settings, factory: Callable[[Workspace], Backend]
) -> Opened:
    ws = Workspace(root, settings)
    ws.prepare()
    try:
        opened = Opened(root, ws, factory(ws))
    except BaseException:
        ws.close()
        raise
    side.repos.append(opened)
    return opened


def address() -> str:
    """A stage address of its own: its containers are found by it, whoever started them."""
    return f"contract-{uuid.uuid4().hex[:12]}"


def job(
    side: Side,
    name: str,
    cmd: str = "cat in.txt > out.txt",
    env: Mapping[str, str] | None = None,
) -> JobSpec:
    """A spec as coordinator.specs builds one: in.txt in, out.txt out, cacheable."""
    return JobSpec(
        address=name,
        dvc_stage=name,
        cmd=cmd,
        lines=(cmd,),
        image=side.image,
        wdir=".",
        deps=(DEP,),
        params={},
        outs=(OutRequest("out.txt", "out.txt", committed=True),),
        cacheable=True,
        env=dict(env or {}),
    )


def run(side: Side, spec: JobSpec, opened: Opened | None = None) -> JobResult:
    where = opened or side.here
    try:
        return where.backend.execute(spec, StageIO())
    except Exception as exc:
        raise AssertionError(f"{spec.address} failed on {side.kind}: {exc}\n{side.log()}") from exc


def left_after_close(side: Side, address: str) -> list[str]:
    """The containers of `address` once the backend is closed (the local backend removes
    finished containers in the background; close waits for that)."""
    side.here.close()
    return side.containers(address)


def engine_digest(docker_client: Any, image: str) -> str:
    return str(docker_client.images.get(image).id)


class TestBackendContract:
    def test_resolve_image_gives_the_engines_content_digest(
        self, side: Side, docker_client: Any
    ) -> None:
        backend, image = side.here.backend, side.image
        digest = engine_digest(docker_client, image)
        before = backend.resolve_image(image)
        assert before == (digest if side.resolves_before_run else f"unresolved:{image}")
        result = run(side, job(side, address()))
        assert result.image_digest == digest
        assert backend.resolve_image(image) == digest  # a fleet's worker has resolved it now
        assert backend.resolve_image(digest) == digest  # an id names itself

    def test_execute_gives_the_entry_asked_for_and_lands_its_outputs(self, side: Side) -> None:
        spec = job(side, address())
        result = run(side, spec)
        out = {"path": "out.txt", "hash": "md5", "md5": IN_MD5, "size": 2}
        assert result.address == spec.address
        assert result.entry == build_entry(spec.cmd, [DEP], {}, [out])
        assert result.run_key == stage_key(spec.cmd, [DEP], {}, ["out.txt"])
        assert (side.here.root / "out.txt").read_bytes() == b"x\n"
        assert side.here.ws.store.exists(IN_MD5)
        assert left_after_close(side, spec.address) == []

    def test_a_failing_command_raises_stage_failed_with_its_exit_code(self, side: Side) -> None:
        spec = job(side, address(), cmd="cat in.txt > out.txt; exit 3")
        with pytest.raises(StageFailed) as failed:
            side.here.backend.execute(spec, StageIO())
        assert failed.value.exit_code == 3, side.log()
        assert failed.value.stage == spec.address
        key = stage_key(spec.cmd, [DEP], {}, ["out.txt"])
        digest = side.here.backend.resolve_image(side.image)
        assert RunCache(side.here.ws.store).lookup(key, digest) is None  # nothing recorded
        assert left_after_close(side, spec.address) == []

    def test_cancel_while_it_runs_raises_stage_cancelled_and_leaves_no_container(
        self, side: Side
    ) -> None:
        spec = job(side, address(), cmd="echo started; sleep 120; cat in.txt > out.txt")
        started = threading.Event()
        io = StageIO(on_log=lambda text: started.set() if "started" in text else None)
        raised: list[BaseException] = []

        def execute() -> None:
            try:
                side.here.backend.execute(spec, io)
            except BaseException as exc:  # handed to the test's thread
                raised.append(exc)

        thread = threading.Thread(target=execute, daemon=True)
        thread.start()
        assert started.wait(WAIT), f"the stage never printed 'started': {raised}\n{side.log()}"
        io.cancel.set()
        thread.join(WAIT)
        assert not thread.is_alive(), "execute did not return after cancel\n" + side.log()
        assert len(raised) == 1 and isinstance(raised[0], StageCancelled), raised
        assert left_after_close(side, spec.address) == []
        assert not (side.here.root / "out.txt").exists()

    def test_a_cacheable_run_is_found_again_with_its_image_env_and_layout(self, side: Side) -> None:
        """As the runner looks: the repository's run-cache, then Backend.lookup."""
        here = side.here
        spec = job(side, address(), env={"SEED": "1"})
        result = run(side, spec)
        key, digest, env = result.run_key, result.image_digest, env_digest(spec.env)
        assert key is not None
        runs = RunCache(here.ws.store)

        def layout() -> str:
            return layout_in(spec, here.root, here.ws.hasher)

        hit = runs.lookup(key, digest, env, layout=layout)
        assert hit is not None and hit.entry == result.entry
        assert runs.lookup(key, "sha256:" + "0" * 64, env, layout=layout) is None
        assert runs.lookup(key, digest, env_digest({"SEED": "2"}), layout=layout) is None
        other_layout = runs.lookup(key, digest, env, layout=lambda: "0" * 64)
        assert (other_layout is None) == side.records_layout
        assert here.backend.lookup("0" * 64, digest, env=env, layout=layout) is None

    def test_lookup_from_another_repository_finds_what_the_backend_shares(self, side: Side) -> None:
        spec = job(side, address(), env={"SEED": "1"})
        result = run(side, spec)
        key, digest, env = result.run_key, result.image_digest, env_digest(spec.env)
        assert key is not None
        there = side.open("there")  # a clone: no dvc.lock, an empty cache
        backend = there.backend
        assert backend.resolve_image(side.image) == digest  # as the runner resolves first

        def layout() -> str:
            return layout_in(spec, there.root, there.ws.hasher)

        found = backend.lookup(key, digest, env=env, layout=layout)
        if side.shares_runs:
            assert found == result.entry
            assert there.ws.store.exists(IN_MD5)  # its objects fetched into the clone's cache
        else:
            assert found is None  # nothing beyond the repository's own cache
        assert backend.lookup(key, "sha256:" + "0" * 64, env=env, layout=layout) is None
        assert backend.lookup(key, digest, env=env_digest({}), layout=layout) is None
        assert backend.lookup(key, digest, env=env, layout=lambda: "0" * 64) is None
        assert backend.lookup("0" * 64, digest, env=env, layout=layout) is None

    def test_prestart_then_discard_or_close_leaves_no_container(self, side: Side) -> None:
        backend = side.here.backend
        discarded, left = job(side, address()), job(side, address())
        backend.prestart(discarded, StageIO())
        backend.prestart(left, StageIO())
        if side.prestarts:
            _await(lambda: bool(side.containers(discarded.address)), "a prestarted container")
            _await(lambda: bool(side.containers(left.address)), "a prestarted container")
        backend.discard(discarded.address)
        side.here.close()
        assert side.containers(discarded.address) == []
        assert side.containers(left.address) == []

    def test_a_prestarted_stage_executes_and_leaves_no_container(self, side: Side) -> None:
        backend = side.here.backend
        spec = job(side, address())
        backend.prestart(spec, StageIO())
        if side.prestarts:
            _await(lambda: bool(side.containers(spec.address)), "a prestarted container")
        result = run(side, spec)
        assert result.entry["outs"][0]["md5"] == IN_MD5
        assert (side.here.root / "out.txt").read_bytes() == b"x\n"
        backend.discard(spec.address)  # after its run: nothing left to drop
        side.here.close()
        assert side.containers(spec.address) == []


def _await(condition: Callable[[], bool], what: str) -> None:
    """Until `condition` holds, polled; fails after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)
