"""`executor run`: the embedded coordinator. Decide per stage, run misses in containers.

Per stage, as its upstream stages finish (schedule.py): decide from hashes (plan.py) whether to
skip, check out, restore from the run-cache or run; runs go to a backend (worker.local, named by
dotted path so executor never imports worker) on up to `jobs` threads; each finished stage's
dvc.lock entry is written as soon as every stage before it in the plan is settled.
"""

from __future__ import annotations

import functools
import importlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from executor.confine import inside
from executor.coordinator.inputs import layout_in
from executor.coordinator.outputs import checkout_entry, commit_data, store_outputs
from executor.coordinator.plan import Evaluation, evaluate, hash_deps, in_cache
from executor.dvcformat.datasources import current, data_sources, record
from executor.dvcformat.entry import Entry, build_entry
from executor.dvcformat.lockfile import LockWriter, read_lock
from executor.errors import (
    ConfigError,
    ExecutorError,
    SandboxError,
    WorkspaceError,
    os_error,
)
from executor.hashing import Hasher
from executor.jobspec import JobResult, JobSpec, OutRequest
from executor.limits import Limits
from executor.pipeline import Dag, ParamsReader
from executor.pipeline.model import Stage
from executor.runcache import LayoutOf, RunCache, env_digest
from executor.stageio import StageIO
from executor.store.local import LocalStore
from executor.terminal import visible
from executor.workspace import Workspace

BACKEND = "worker.local:LocalBackend"
LOCK_INTERVAL = 1.0  # seconds: dvc.lock writes are batched this much while stages resolve fast


class Backend(Protocol):
    """Runs stages in containers on this host (implemented in worker.local)."""

    def resolve_image(self, image: str) -> str: ...

    def execute(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> JobResult: ...

    def prestart(
        self,
        spec: JobSpec,
        io: StageIO,
    ) -> None:
        """Start the stage's container early, held until `execute` (or `discard`)."""

    def lookup(
        self,
        key: str,
        image_digest: str,
        *,
        env: str | None = None,
        fetch: bool = True,
        layout: LayoutOf | None = None,
    ) -> Entry | None:
        """A run-cache entry made with this image and environment (`env_digest`) (and, if a
        worker made it, `layout`: RunCache.check) found beyond the local cache (the
        fleet's store), its objects fetched into the local cache (unless not `fetch`:
        --dry); None where there is no such place."""

    def discard(self, address: str) -> None: ...

    def close(self) -> None:
        """Remove every container started early and never used."""


@dataclass(frozen=True)
class Launch:
    """A stage decided to run, and why; it starts when a slot is free."""

    stage: Stage
    ev: Evaluation
    why: str


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    downstream: bool = False
    dry: bool = False
    force: bool = False
    no_commit: bool = False
    allow_missing: bool = False
    jobs: int = 1


@dataclass
class RunSummary:
    """What happened to each stage: skipped, restored, ran, failed, not run."""

    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, ExecutorError] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted


def load_backend(ws: Workspace, env: Mapping[str, str], jobs: int = 1) -> Backend:
    module, _, name = BACKEND.partition(":")
    factory = getattr(importlib.import_module(module), name)
    backend: Backend = factory(ws, env, jobs)
    return backend


class Runner:
    """One `executor run` over a loaded pipeline."""

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
        self.store: LocalStore = ws.store
        self.runcache = RunCache(ws.store, trust_dvc_runs=ws.settings.trust_dvc_runs)
        self.hasher: Hasher = ws.hasher
        self.params = params or ParamsReader(ws.root)
        self.locks = LockWriter(ws.root, echo)
        self.locks.start_empty({stage.lockfile for stage in dag.stages.values()})
        self._lock_cache: dict[str, dict[str, Entry]] = {}
        self.known_outs: dict[str, Mapping[str, Any]] = {}  # repo path -> out item, this run
        self.cancel = threading.Event()
        self.summary = RunSummary()
        self._plan: list[str] = []
        self._plan_index: dict[str, int] = {}
        self._next = 0  # index in _plan of the first stage whose entry may still be pending
        self._entries: dict[str, tuple[Stage, Entry]] = {}
        self._ready: list[tuple[Stage, Entry]] = []  # settled in plan order, not yet written
        self._unignored: dict[str, Stage] = {}  # recorded, outputs not yet in .gitignore
        self._visible: set[str] | None = None  # paths from which a dep sees such a file
        self._tracked: set[str] | None = None  # outputs of the plan that git tracks
        self._last_write = 0.0
        self._images: dict[str, str] = {}  # image -> first stage using it
        self._imageless: set[str] = set()  # stages no image is configured for
        self.warm: set[str] = set()  # stages whose container was started early, not yet used
        self._echo_lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The container backend, created on first need; every image of the plan is resolved
        then, so a missing image fails before any stage ran or was restored."""
        if self._backend is None:
            backend = self._backend_factory()
            protect = getattr(backend, "protect", None)
            if protect is not None:  # read-only in the containers: dvc.yaml files, outputs
                protect(self.dag.stages.values(), self.locks)
            for image, address in self._images.items():
                try:
                    backend.resolve_image(image)
                except (ConfigError, SandboxError) as exc:
                    raise exc.prefixed(f"stage '{address}'") from exc
            self._backend = backend
        return self._backend

    def preflight(self, stages: list[Stage]) -> None:
        """Check what can be checked before anything changes: images named, params keys
        present, every dep either in the workspace or produced by a stage (or a file DVC
        writes after each stage it runs: a dvc.lock of this pipeline, or the .gitignore
        beside a cached output)."""
        for stage in stages:
            self.recorded(stage)  # every dvc.lock read and checked before anything changes
            if stage.frozen:
                continue
            try:
                self._images.setdefault(self.image_of(stage), stage.address)
            except ConfigError:
                # Needed only if it runs or is looked up (with the image in the run-cache
                # key): an up-to-date pipeline needs no image, as `dvc repro` needs none.
                self._imageless.add(stage.address)
            self.params.values(stage)
            self.stage_env(stage)
            try:
                Limits.from_meta(stage.executor_meta)
            except ConfigError as exc:
                raise ConfigError(f"{stage.dvcfile}: stage '{stage.address}': {exc}") from None
            for dep in stage.deps:
                path = stage.repo_path(dep)
                if self.options.allow_missing or self.dag.producers(path):
                    continue  # checked at the stage's turn, against what dvc.lock recorded
                if not (self.ws.root / path).exists() and path not in self._written(stages):
                    raise WorkspaceError(
                        f"stage '{stage.address}': dependency '{dep}' does not exist ({path}); "
                        "create it or add the stage that produces it"
                    )

    def _written(self, stages: list[Stage]) -> set[str]:
        """Files DVC writes after a stage ran: each dvc.lock, each cached output's .gitignore
        (in git). Only asked about a missing dep, so the no-op path never builds it."""
        written = {stage.lockfile for stage in stages}
        if self.ws.in_git():
            written.update(
                posixpath.join(posixpath.dirname(stage.repo_path(out.path)), ".gitignore")
                for stage in stages
                for out in stage.outs
                if out.cache
            )
        return written

    def verify_data_sources(self, stages: list[Stage]) -> None:
        """As `dvc repro`: each `.dvc` output a stage depends on is checked first; a changed
        one is committed to the cache and its `.dvc` file updated (not with --dry)."""
        if self.options.downstream:
            return  # DVC plans the targets and what follows: no data source comes after them
        deps = [
            path
            for stage in stages
            if not stage.frozen  # DVC's graph cuts a frozen stage off from what it uses
            for path in (stage.repo_path(dep) for dep in stage.deps)
            if not self.dag.producers(path)
        ]
        for source in data_sources(self.ws.root, deps):
            shown = os.path.relpath(self.ws.root / source.dvcfile, self.ws.cwd)
            path = inside(self.ws.root, source.path)
            if not path.exists():
                if self.options.allow_missing:
                    continue
                raise WorkspaceError(
                    f"'{source.dvcfile}': its data '{source.path}' does not exist; get it back "
                    "with `executor pull` or `dvc checkout`"
                )
            info = current(self.ws.root, source, self.hasher)
            if info.md5 == source.md5:
                self.say(f"'{shown}' didn't change, skipping")
                continue
            if self.options.dry:
                self.say(f"'{shown}' changed: it would be committed before the stages")
                continue
            self.say(f"Verifying data sources in stage: '{shown}'")
            # Changed content is recorded with DVC 3's md5, whatever hash recorded it before.
            if source.cache and not self.options.no_commit:
                info = commit_data(self.store, self.hasher, self.ws.root, source.path)
            else:
                info = self.hasher.hash_path(path)
            record(self.ws.root, source, info)

    def recorded(self, stage: Stage) -> Entry | None:
        if stage.lockfile not in self._lock_cache:
            self._lock_cache[stage.lockfile] = read_lock(self.ws.root, stage.lockfile)
        return self._lock_cache[stage.lockfile].get(stage.name)

    def image_of(self, stage: Stage) -> str:
        image = stage.executor_meta.get("image") or self.ws.settings.image
        if not image:
            raise ConfigError(
                f"stage '{stage.address}' has no container image: set meta.executor.image in "
                f"{stage.dvcfile}, `image:` in .executor.yaml, or EXECUTOR_IMAGE"
            )
        return str(image)

    def _remember(self, stage: Stage, entry: Entry) -> None:
        for item in entry.get("outs", []):
            self.known_outs[stage.repo_path(str(item["path"]))] = item

    def record_result(self, stage: Stage, entry: Entry) -> None:
        """Remember a stage's result now; its dvc.lock entry is written in plan order."""
        self._remember(stage, entry)
        if not self.options.dry:
            self._entries[stage.address] = (stage, entry)
            self._unignored[stage.address] = stage

    def set_plan(self, stages: list[Stage]) -> None:
        """The stages this run visits, in DVC's plan order (dvc.lock entries follow it)."""
        self._plan = [s.address for s in stages]

    def flush(self, final: bool = False, now: bool = False) -> None:
        """Write buffered entries in plan order, as far as every earlier stage is settled.

        With -j, stages finish in any order; DVC writes dvc.lock entries in its plan order,
        and a new entry's position in the file is fixed by its first write. While stages
        resolve quickly, writes are batched at most every LOCK_INTERVAL (the loop wakes that
        often while containers run), and `final` writes the rest at the end; `now` writes
        what is settled at once (a stage about to be hashed reads a dvc.lock).
        """
        while self._next < len(self._plan):
            address = self._plan[self._next]
            if address not in self.summary.status and not final:
                break
            self._next += 1
            if address in self._entries:
                self._ready.append(self._entries.pop(address))
        if not self._ready:
            return
        if not (final or now) and time.monotonic() - self._last_write < LOCK_INTERVAL:
            return
        by_file: dict[str, list[tuple[Stage, Entry]]] = {}
        for stage, entry in self._ready:
            by_file.setdefault(stage.lockfile, []).append((stage, entry))
        for lockfile, items in by_file.items():
            self.locks.write_many(lockfile, [(stage.name, entry) for stage, entry in items])
            for stage, entry in items:
                self._lock_cache.setdefault(lockfile, {})[stage.name] = entry
            self.ws.ignore_outputs(stage for stage, _ in items)
            for stage, _ in items:
                self._unignored.pop(stage.address, None)
        self._ready.clear()  # only once written: an interrupted write is retried at the end
        self._last_write = time.monotonic()

    def as_dvc_left_it(self, stage: Stage) -> None:
        """Before `stage`'s deps are hashed, write what `dvc repro` would have written by now
        where they can see it: DVC adds each output to its .gitignore (Output.save) and dumps
        dvc.lock right after each stage, so a dep folder holding those files hashes them.

        Only files inside one of the stage's deps are written early: their outputs lie inside
        a dep, so they all come from this stage's upstream stages, which have all finished (the
        file gets its lines in plan order, complete). The rest waits for `flush`, which writes
        in plan order, so nothing is written early on a pipeline without such folder deps.
        """
        if not self._unignored and not self._entries and not self._ready:
            return
        deps = [stage.repo_path(dep) for dep in stage.deps]
        if not deps or not any(d in self._seeing() for d in deps):
            return

        def seen(path: str) -> bool:
            return any(d == "." or path == d or path.startswith(d + "/") for d in deps)

        pending = {s.lockfile for s, _ in self._ready} | {
            s.lockfile for s, _ in self._entries.values()
        }
        if any(seen(lockfile) for lockfile in pending):
            self.flush(now=True)
        if not self._unignored:
            return
        order = self._order()
        earlier = sorted(self._unignored.values(), key=lambda s: order.get(s.address, -1))
        paths = [
            path
            for up in earlier
            for path in (up.repo_path(out.path) for out in up.outs if out.cache)
            if seen(posixpath.join(posixpath.dirname(path), ".gitignore"))
        ]
        if paths:
            self.ws.ignore_paths(paths)

    def _seeing(self) -> set[str]:
        """Every path a dep could be to see a dvc.lock or an output's .gitignore of the plan:
        such a file and each folder above it. Built once; most deps are in no such place."""
        if self._visible is None:
            files = {stage.lockfile for stage in self.dag.stages.values()}
            files.update(
                posixpath.join(posixpath.dirname(stage.repo_path(out.path)), ".gitignore")
                for stage in self.dag.stages.values()
                for out in stage.outs
                if out.cache
            )
            self._visible = {"."}
            for path in files:
                while path and path not in self._visible:
                    self._visible.add(path)
                    path = posixpath.dirname(path)
        return self._visible

    def _order(self) -> dict[str, int]:
        if len(self._plan_index) != len(self._plan):
            self._plan_index = {address: i for i, address in enumerate(self._plan)}
        return self._plan_index

    def shown(self, stage: Stage) -> str:
        """A stage as DVC names it in messages: addressed from the current directory."""
        return self.ws.dvc_stage(stage)

    def say(self, text: str) -> None:
        with self._echo_lock:
            self.echo(text)

    # -- decisions ---------------------------------------------------------------------------
    def decide(self, stage: Stage) -> tuple[str, Evaluation | None]:
        """'skip', 'checkout', 'restore', 'run' (and the evaluation behind it)."""
        recorded = self.recorded(stage)
        self.as_dvc_left_it(stage)
        if stage.frozen:
            return self.decide_frozen(stage, recorded)
        allowed = recorded if self.options.allow_missing else None
        deps = hash_deps(self.ws.root, stage, self.hasher, self.known_outs, allowed)
        params = self.params.values(stage)
        if self.options.force:
            return "run", Evaluation(stage, deps, params, recorded, reasons=["forced"])
        ev = evaluate(self.ws.root, stage, deps, params, recorded, self.hasher, self.store)
        if not ev.reasons and not ev.outs_only:
            return "skip", ev
        if self._missing_allowed(ev):
            return "skip", ev
        outs = recorded.get("outs", []) if recorded else []
        if ev.outs_only and stage.cacheable and all(in_cache(self.store, o) for o in outs):
            return "checkout", ev
        if stage.cacheable:
            return "lookup", ev
        return "run", ev

    def decide_frozen(self, stage: Stage, recorded: Entry | None) -> tuple[str, Evaluation]:
        """DVC never runs a frozen stage and ignores its deps; if its command or outputs
        differ from dvc.lock, it verifies the outputs exist and records them as they are."""
        self.warn(
            f"stage: '{self.shown(stage)}' is frozen. "
            "Its dependencies are not going to be reproduced."
        )
        deps = list((recorded or {}).get("deps", []))
        params = dict((recorded or {}).get("params", {}))
        ev = evaluate(self.ws.root, stage, deps, params, recorded, self.hasher, self.store)
        if self.options.force or ev.reasons or (ev.outs_only and not self._missing_allowed(ev)):
            return "verify", ev
        return "skip", ev

    def _missing_allowed(self, ev: Evaluation) -> bool:
        """DVC's --allow-missing: outputs deleted or not in the cache are fine, if that is
        all that differs (a modified output is not)."""
        return self.options.allow_missing and ev.outs_only and not ev.changed_outs

    def verify_frozen(self, stage: Stage) -> None:
        if self.options.dry:
            self.summary.status[stage.address] = "would verify"
            return
        self.say(f"Verifying outputs in frozen stage: '{self.shown(stage)}'")
        deps = hash_deps(self.ws.root, stage, self.hasher, self.known_outs)
        params = self.params.values(stage)
        spec_outs = self.job_spec(stage, Evaluation(stage, deps, params, None)).outs
        commit = not self.options.no_commit
        outs = store_outputs(
            stage.address, spec_outs, self.ws.root, self.store, self.hasher, commit=commit
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
            checkout_entry(
                self.store, self.ws.root, self.hasher, wdir=stage.wdir, outs=outs, cached=cached
            )
        self.record_result(stage, entry if keep else build_entry(ev.cmd, ev.deps, ev.params, outs))
        self.summary.status[stage.address] = "would restore" if self.options.dry else "restored"

    def stage_env(self, stage: Stage) -> dict[str, str]:
        """Extra variables: `.executor.yaml` `env`, then the stage's `meta.executor.env`."""
        extra = stage.executor_meta.get("env") or {}
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in extra.items()
        ):
            raise ConfigError(
                f"{stage.dvcfile}: stage '{stage.address}': meta.executor.env must map "
                "variable names to strings"
            )
        return {**self.ws.settings.container_env, **{k: str(v) for k, v in extra.items()}}

    def job_spec(self, stage: Stage, ev: Evaluation) -> JobSpec:
        return JobSpec(
            address=stage.address,
            dvc_stage=self.ws.dvc_stage(stage),
            cmd=stage.lock_cmd,
            lines=stage.lines,
            image=self.image_of(stage),
            wdir=stage.wdir,
            deps=tuple(ev.deps),
            params=ev.params,
            outs=tuple(
                # DVC commits a cache: false metric or plot only with a run-cache entry.
                OutRequest(
                    o.path,
                    stage.repo_path(o.path),
                    o.cache or stage.cacheable,
                    o.persist,
                    o.cache,
                    o.kind,
                )
                for o in stage.outs
            ),
            cacheable=stage.cacheable,
            commit=not self.options.no_commit,
            executor_meta=dict(stage.executor_meta),
            env=self.stage_env(stage),
        )

    def layout(self, stage: Stage, ev: Evaluation) -> str | None:
        """The layout a worker's run must have recorded to stand for this stage's
        (runcache.Record.made_with); None under --dry while a dep is still missing: the
        upstream stage that makes it would run or be restored first."""
        spec = self.job_spec(stage, ev)
        if self.options.dry and any(
            not os.path.lexists(self.ws.root / stage.repo_path(str(d["path"]))) for d in ev.deps
        ):
            return None
        return layout_in(spec, self.ws.root, self.ws.hasher)

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
        spec = self.job_spec(stage, launch.ev)
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
        if stage.address in self._imageless:
            return False  # it fails with its message when its turn comes
        wdir = posixpath.normpath(stage.wdir)
        if any(wdir == p.path or wdir.startswith(p.path + "/") for p in self.dag.producers(wdir)):
            return False  # its wdir is (inside) an output, replaced when that stage runs
        spec = self.job_spec(stage, Evaluation(stage, [], {}, None))
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

    # -- acting --------------------------------------------------------------------------------
    def act(self, stage: Stage) -> Launch | None:
        """Decide: finish the stage now (skip, check out, restore), or say it must run."""
        launch = self._act(stage)
        if launch is None:
            self.discard_warm(stage)
        return launch

    def check_untracked(self, stage: Stage) -> None:
        """DVC refuses to save an output git tracks (OutputAlreadyTrackedError), after the
        stage ran; executor refuses before the stage runs or is restored. Git is asked once
        per command, for every output of the plan, when the first stage does not skip."""
        if self.options.dry or not self.ws.in_git():
            return
        if self._tracked is None:
            from executor.dvcformat.gitignore import tracked_by_git

            plan = [self.dag.stages[address] for address in self._plan]
            outs = [s.repo_path(o.path) for s in plan for o in s.outs if o.cache]
            self._tracked = tracked_by_git(self.ws.root, outs)
        for out in stage.outs:
            path = stage.repo_path(out.path)
            if out.cache and path in self._tracked:
                raise WorkspaceError(
                    f"stage '{stage.address}': output '{out.path}' is already tracked by git; "
                    f"remove it from git (`git rm -r --cached '{path}'`), then run again"
                )

    def _act(self, stage: Stage) -> Launch | None:
        action, ev = self.decide(stage)
        if action != "skip":
            self.check_untracked(stage)
        if action == "skip":
            if ev is not None:
                self.say(f"Stage '{self.shown(stage)}' didn't change, skipping")
                if ev.recorded:
                    self._remember(stage, ev.recorded)
            self.summary.status[stage.address] = "skipped"
            return None
        assert ev is not None
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
                digest = self.backend.resolve_image(self.image_of(stage))
            except SandboxError as exc:
                if not self.options.dry:
                    raise
                # --dry works without a Docker engine, as `dvc repro --dry` does.
                return Launch(stage, ev, f"{why}; run-cache not checked: {exc}")
            env = env_digest(self.stage_env(stage))
            layout = functools.cache(lambda: self.layout(stage, ev))
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
