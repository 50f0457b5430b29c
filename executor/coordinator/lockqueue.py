"""dvc.lock entries of one run: buffered, and written in DVC's plan order as far as every
earlier stage is settled, batched while stages resolve fast; and what `dvc repro` would
have written by the time a stage's deps are hashed."""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping

from executor.coordinator.types import LOCK_INTERVAL
from executor.dvcformat.entry import Entry
from executor.dvcformat.lockfile import LockWriter, read_lock
from executor.pipeline import Dag
from executor.pipeline.model import Stage
from executor.workspace import Workspace


class LockQueue:
    """The lock entries of a run over `dag`; `status` is the run's stage -> state map (a
    stage with a state is settled)."""

    def __init__(
        self,
        ws: Workspace,
        dag: Dag,
        echo: Callable[[str], None],
        status: Mapping[str, str],
        dry: bool = False,
    ) -> None:
        self.ws = ws
        self.dag = dag
        self.dry = dry
        self.writer = LockWriter(ws.root, echo)
        self.writer.start_empty({stage.lockfile for stage in dag.stages.values()})
        self._status = status
        self._lock_cache: dict[str, dict[str, Entry]] = {}
        self.plan: list[str] = []
        self._plan_index: dict[str, int] = {}
        self._next = 0  # index in plan of the first stage whose entry may still be pending
        self._entries: dict[str, tuple[Stage, Entry]] = {}
        self._ready: list[tuple[Stage, Entry]] = []  # settled in plan order, not yet written
        self._unignored: dict[str, Stage] = {}  # recorded, outputs not yet in .gitignore
        self._visible: set[str] | None = None  # paths from which a dep sees such a file
        self._last_write = 0.0

    def recorded(self, stage: Stage) -> Entry | None:
        """The stage's entry in its dvc.lock (as this run last wrote it)."""
        if stage.lockfile not in self._lock_cache:
            self._lock_cache[stage.lockfile] = read_lock(self.ws.root, stage.lockfile)
        return self._lock_cache[stage.lockfile].get(stage.name)

    def set_plan(self, stages: list[Stage]) -> None:
        """The stages this run visits, in DVC's plan order (dvc.lock entries follow it)."""
        self.plan = [s.address for s in stages]

    def add(self, stage: Stage, entry: Entry) -> None:
        """A stage's result; its entry is written in plan order (never under --dry)."""
        if not self.dry:
            self._entries[stage.address] = (stage, entry)
            self._unignored[stage.address] = stage

    def flush(self, final: bool = False, now: bool = False) -> None:
        """Write buffered entries in plan order, as far as every earlier stage is settled.

        With -j, stages finish in any order; DVC writes dvc.lock entries in its plan order,
        and a new entry's position in the file is fixed by its first write. While stages
        resolve quickly, writes are batched at most every LOCK_INTERVAL (the loop wakes that
        often while containers run), and `final` writes the rest at the end; `now` writes
        what is settled at once (a stage about to be hashed reads a dvc.lock).
        """
        while self._next < len(self.plan):
            address = self.plan[self._next]
            if address not in self._status and not final:
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
            self.writer.write_many(lockfile, [(stage.name, entry) for stage, entry in items])
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
        if len(self._plan_index) != len(self.plan):
            self._plan_index = {address: i for i, address in enumerate(self.plan)}
        return self._plan_index
