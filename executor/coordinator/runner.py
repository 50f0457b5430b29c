"""The decisions of one run, per stage: finish it here (skip, check out, restore from the
run-cache, verify a frozen one) or launch it on the backend, and record what it gave.

schedule.run_plan calls `act` as each stage's upstream settles, `start` for those that
run, `finish` as they end. The backend (worker.local for `executor run`, named by dotted
path so executor never imports worker; executor.fleet for `executor submit`) only executes;
results land here the same way whichever ran them.
"""

from __future__ import annotations

import functools
import posixpath
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from executor.coordinator.decide import decide
from executor.coordinator.lockqueue import LockQueue
from executor.coordinator.outputs import checkout_entry, store_outputs
from executor.coordinator.plan import Evaluation, hash_deps
from executor.coordinator.preflight import Preflight
from executor.coordinator.specs import StageSpecs
from executor.coordinator.types import Backend, Deferral, Launch, RunOptions, RunSummary
from executor.dvcformat.entry import Entry, build_entry
from executor.errors import ConfigError, ExecutorError, SandboxError, os_error
from executor.jobresult import JobResult
from executor.pipeline import Dag, ParamsReader
from executor.pipeline.model import Stage
from executor.runcache import RunCache, env_digest
from executor.stageio import StageIO
from executor.terminal import visible
from executor.workspace import Workspace


class Runner:
    """One run over a loaded pipeline: `specs` builds its job specs, `queue` holds its
    dvc.lock entries, `checks` its preflight."""

    def __init__(
        self,
        ws: Workspace,
        dag: Dag,
        options: RunOptions,
        echo: Callable[[str], None],
        backend_factory: Callable[[], Backend],
        params: ParamsReader | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self.dag = dag
        self.options = options
        self.echo = echo
        self.warn = warn or (lambda text: echo(f"WARNING: {text}"))
        self._backend_factory = backend_factory
        self._backend: Backend | None = None
        self.runcache = RunCache(ws.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self.params = params or ParamsReader(ws.root)
        self.summary = RunSummary()
        self.specs = StageSpecs(ws, options)
        # Detached, dvc.lock is written by `executor fetch`, every entry in plan order.
        self.queue = LockQueue(
            ws, dag, echo, self.summary.status, dry=options.dry or options.detach
        )
        self.checks = Preflight(ws, dag, options, self.params, self.specs, self.queue, self.say)
        self.known_outs: dict[str, Mapping[str, Any]] = {}  # repo path -> out item, this run
        self.cancel = threading.Event()
        self.warm: set[str] = set()  # stages whose container was started early, not yet used
        self.deferral: Deferral | None = None  # submit --detach: where deferred stages go
        self.results: dict[str, Entry] = {}  # stage -> the lock entry this run gave it
        self.progress: Callable[[RunSummary], None] | None = None  # told as stages settle
        self._echo_lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        """The container backend, created on first need; every image of the plan is resolved
        then, so a missing image fails before any stage ran or was restored."""
        if self._backend is None:
            backend = self._backend_factory()
            protect = getattr(backend, "protect", None)
            if protect is not None:  # read-only in the containers: dvc.yaml files, outputs
                protect(self.dag.stages.values(), self.queue.writer)
            for image, address in self.checks.images.items():
                try:
                    backend.resolve_image(image)
                except (ConfigError, SandboxError) as exc:
                    raise exc.prefixed(f"stage '{address}'") from exc
            self._backend = backend
        return self._backend

    def _remember(self, stage: Stage, entry: Entry) -> None:
        for item in entry.get("outs", []):
            self.known_outs[stage.repo_path(str(item["path"]))] = item

    def record_result(self, stage: Stage, entry: Entry) -> None:
        """Remember a stage's result now; its dvc.lock entry is written in plan order."""
        self._remember(stage, entry)
        self.results[stage.address] = entry
        self.queue.add(stage, entry)

    def shown(self, stage: Stage) -> str:
        """A stage as DVC names it in messages: addressed from the current directory."""
        return self.ws.dvc_stage(stage)

    def say(self, text: str) -> None:
        with self._echo_lock:
            self.echo(text)

    def decide(self, stage: Stage) -> tuple[str, Evaluation]:
        """coordinator.decide for `stage`, once what `dvc repro` would have written by now
        is where its deps can see it."""
        recorded = self.queue.recorded(stage)
        self.queue.as_dvc_left_it(stage)
        if stage.frozen:
            self.warn(
                f"stage: '{self.shown(stage)}' is frozen. "
                "Its dependencies are not going to be reproduced."
            )
        return decide(
            stage,
            recorded,
            ws=self.ws,
            options=self.options,
            params=self.params,
            known_outs=self.known_outs,
        )

    def verify_frozen(self, stage: Stage) -> None:
        if self.options.dry:
            self.summary.status[stage.address] = "would verify"
            return
        self.say(f"Verifying outputs in frozen stage: '{self.shown(stage)}'")
        deps = hash_deps(self.ws.root, stage, self.ws.hasher, self.known_outs)
        params = self.params.values(stage)
        spec_outs = self.specs.job_spec(stage, Evaluation(stage, deps, params, None)).outs
        commit = not self.options.no_commit
        outs = store_outputs(
            stage.address, spec_outs, self.ws.root, self.ws.store, self.ws.hasher, commit=commit
        )
        entry = build_entry(stage.lock_cmd, deps, params, outs)
        if stage.cacheable and commit:
            self.runcache.save(entry, image=None, image_digest=None)
        self.record_result(stage, entry)
        self.summary.status[stage.address] = "verified"

    def restore(
        self, stage: Stage, ev: Evaluation, entry: Entry, source: str, *, keep: bool = False
    ) -> None:
        self.say(f"Stage '{self.shown(stage)}' is cached - skipping run, checking out outputs")
        if self.options.dry:
            self.say(f"  why: {ev.why()}; outputs from {source}")
        outs = entry.get("outs", [])
        if not self.options.dry:
            cached = {out.path: out.cache for out in stage.outs}
            ws = self.ws
            checkout_entry(ws.store, ws.root, ws.hasher, wdir=stage.wdir, outs=outs, cached=cached)
        self.record_result(stage, entry if keep else build_entry(ev.cmd, ev.deps, ev.params, outs))
        self.summary.status[stage.address] = "would restore" if self.options.dry else "restored"

    def _prefix(self, stage: Stage) -> str:
        return f"[{self.shown(stage)}] " if self.options.jobs > 1 else ""

    def io(self, stage: Stage) -> StageIO:
        """The run's cancel; the stage's output and, as DVC prints it just before it runs
        that line, `> LINE`, on the terminal."""
        prefix = self._prefix(stage)
        return StageIO(
            self.cancel,
            lambda text: self.say(f"{prefix}{visible(text)}"),
            lambda index: self.say(f"{prefix}> {visible(stage.lines[index - 1])}"),
        )

    def start(self, launch: Launch, pool: ThreadPoolExecutor) -> Future[JobResult]:
        """Run a stage decided to run: its container (started early, if it was) on the pool."""
        stage = launch.stage
        spec = self.specs.job_spec(stage, launch.ev)
        backend = None if self.options.dry else self.backend
        self.say(f"Running stage '{self.shown(stage)}':")
        if self.options.dry:
            for line in stage.lines:
                self.say(f"> {line}")
            self.say(f"  why: {launch.why}")
            done: Future[JobResult] = Future()
            done.set_result(JobResult(stage.address, {}, "", 0.0))
            return done
        assert backend is not None
        self.warm.discard(stage.address)  # execute takes its container
        return pool.submit(backend.execute, spec, self.io(stage))

    def prestart(self, stage: Stage) -> bool:
        """Start the container of a stage that will probably run once its upstream finishes.

        Its deps are not known yet; only what shapes the container goes into the spec. False
        when there is nothing to gain (no backend yet: nothing runs, so nothing to overlap).
        """
        if self._backend is None or self.options.dry or stage.frozen:
            return False
        if stage.address in self.checks.imageless:
            return False  # it fails with its message when its turn comes
        wdir = posixpath.normpath(stage.wdir)
        if any(wdir == p.path or wdir.startswith(p.path + "/") for p in self.dag.producers(wdir)):
            return False  # its wdir is (inside) an output, replaced when that stage runs
        spec = self.specs.job_spec(stage, Evaluation(stage, [], {}, None))
        self._backend.prestart(spec, self.io(stage))
        self.warm.add(stage.address)
        return True

    def discard_warm(self, stage: Stage) -> None:
        if stage.address in self.warm:
            self.warm.discard(stage.address)
            if self._backend is not None:
                self._backend.discard(stage.address)

    def close(self) -> None:
        """Remove the containers started early for stages that did not run."""
        self.warm.clear()
        if self._backend is not None:
            self._backend.close()

    def act(self, stage: Stage) -> Launch | None:
        """Decide: finish the stage now (skip, check out, restore), or say it must run."""
        launch = self._act(stage)
        if launch is None:
            self.discard_warm(stage)
        return launch

    def _act(self, stage: Stage) -> Launch | None:
        action, ev = self.decide(stage)
        if action != "skip":
            self.checks.check_untracked(stage)
        if action == "skip":
            self.say(f"Stage '{self.shown(stage)}' didn't change, skipping")
            if ev.recorded:
                self._remember(stage, ev.recorded)
            self.summary.status[stage.address] = "skipped"
            return None
        if action == "verify":
            self.verify_frozen(stage)
            return None
        if action == "checkout":
            assert ev.recorded is not None
            # Inputs unchanged: dvc.lock stays as it is, DVC 2.x hashes and all (as DVC's).
            self.restore(stage, ev, ev.recorded, "the cache, as dvc.lock records them", keep=True)
            return None
        why = "forced" if self.options.force else ev.why()
        if action == "lookup":
            key = ev.key()
            try:
                digest = self.backend.resolve_image(self.specs.image_of(stage))
            except SandboxError as exc:
                if not self.options.dry:
                    raise
                # --dry works without a Docker engine, as `dvc repro --dry` does.
                return Launch(stage, ev, f"{why}; run-cache not checked: {exc}")
            env = env_digest(self.specs.stage_env(stage))
            layout = functools.cache(lambda: self.specs.layout(stage, ev))
            hit = self.runcache.lookup(key, digest, env, layout=layout)
            if hit is not None:
                self.restore(stage, ev, hit.entry, f"run-cache entry {key[:12]}/{hit.value[:12]}")
                return None
            found = self.backend.lookup(
                key, digest, env=env, fetch=not self.options.dry, layout=layout
            )
            if found is not None:
                self.restore(stage, ev, found, f"the fleet's run-cache, key {key[:12]}")
                return None
            why += f"; no complete run-cache entry for key {key[:12]} with this image"
        elif stage.cacheable is False and not self.options.force:
            why += "; the stage is not cacheable (DVC would not cache it either)"
        return Launch(stage, ev, why)

    def fail(self, stage: Stage, exc: ExecutorError | OSError) -> None:
        """Record a stage's failure; an OSError becomes a one-line workspace error."""
        if isinstance(exc, OSError):
            exc = os_error(stage.address, exc)
        self.summary.errors[stage.address] = exc
        self.summary.status[stage.address] = "failed"

    def finish(self, stage: Stage, future: Future[JobResult]) -> None:
        try:
            result = future.result()
        except (ExecutorError, OSError) as exc:
            self.fail(stage, exc)
            return
        if self.options.dry:
            self.summary.status[stage.address] = "would run"
            return
        self.record_result(stage, result.entry)
        self.summary.status[stage.address] = "ran"
