"""Push and pull: the objects a repository's outputs need, between its cache and a store.

As `dvc push`/`dvc pull` do, and in the same layout. Cost follows what has to move: presence
is asked in batches (HEAD for one or two objects, else listings from the first wanted key),
a `.dir` object in the store stands for all of its files (DVC and executor both upload it
only after them), and the previous version of a changed directory, remembered per store in
`.dvc/tmp`, stands for the files it shares. Objects move on a bounded thread pool over the
store's one client; every download is verified before it enters the cache. Run-cache entries
go after the objects, executor's records before their entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from executor.errors import (
    CorruptObject,
    ObjectMissing,
    TransferIncomplete,
    UnsavedChanges,
)
from executor.hashing.hasher import Hasher
from executor.hashing.objects import parse_manifest
from executor.store.base import ObjectStore
from executor.store.cachecheck import drop_corrupt
from executor.store.checkout import HashMany, checkout, hashes_of
from executor.store.fresh import FreshOutputs, Remember
from executor.store.hints import DirHints
from executor.store.local import LocalStore
from executor.store.movers import fetch_objects, put_objects
from executor.store.pool import Progress, Quiet
from executor.store.pushplan import plan_push
from executor.store.runsync import copy_runs, entry_objects
from executor.store.tracked import Tracked


@dataclass
class Report:
    """What a push or pull did."""

    moved: int = 0  # objects transferred
    present: int = 0  # objects already where they were needed
    runs: int = 0  # run-cache entries and records transferred
    checked_out: int = 0  # files written into the workspace (pull)
    failed: dict[str, str] = field(default_factory=dict)  # object -> why

    def add(self, other: Report) -> None:
        """Count another push's or pull's work in this one."""
        self.moved += other.moved
        self.present += other.present
        self.runs += other.runs
        self.checked_out += other.checked_out
        self.failed.update(other.failed)


def push(
    cache: LocalStore,
    store: ObjectStore,
    outputs: Iterable[Tracked],
    *,
    run_cache: bool = False,
    jobs: int = 16,
    progress: Progress | None = None,
    hints: DirHints | None = None,
) -> Report:
    """Upload what the outputs (and, with `run_cache`, every run entry) need and the store
    lacks; TransferIncomplete at the end if some objects could not be uploaded. `hints`: the
    directories' previous versions in this store, so only their changed files are checked.
    Outputs DVC 2.x recorded go to the store's 2.x layout, as `dvc push` sends them."""
    progress, hints = progress or Quiet(), hints or DirHints()
    report = Report()
    outputs = [o for o in outputs if o.push]
    legacy = [o for o in outputs if o.legacy]
    if legacy:
        views = cache.legacy_view(), store.legacy_view()
        report.add(_push_objects(*views, legacy, set(), jobs, progress, hints))
    runs = cache.all_runs() if run_cache else {}
    current = [o for o in outputs if not o.legacy]
    needed_by_runs = entry_objects(cache, runs)
    report.add(_push_objects(cache, store, current, needed_by_runs, jobs, progress, hints))
    if run_cache:
        report.runs = copy_runs(cache, store, runs, jobs, progress)
    if report.failed:
        raise TransferIncomplete(f"push to {store.url}", report.failed)
    return report


def _push_objects(
    cache: LocalStore,
    store: ObjectStore,
    outputs: list[Tracked],
    extra: set[str],
    jobs: int,
    progress: Progress,
    hints: DirHints,
) -> Report:
    """Upload the objects `outputs` and `extra` need and the store lacks (one layout)."""
    report = Report()
    wanted = {o.md5 for o in outputs} | extra
    if not wanted:
        return report
    plan = plan_push(cache, store, outputs, wanted, hints, progress)
    report.present, report.failed = len(plan.present), plan.failed
    paths = cache.object_str
    progress.start(f"pushing to {store.url}", len(plan.files) + len(plan.dirs))
    report.moved = put_objects(store, paths, plan.files, jobs, report.failed, progress)
    ready = [d for d, fs in plan.dirs.items() if not fs & report.failed.keys()]
    # .dir after its files
    report.moved += put_objects(store, paths, ready, jobs, report.failed, progress)
    _remember(hints, outputs, (plan.present | set(ready)) - report.failed.keys())
    return report


def _remember(hints: DirHints, outputs: list[Tracked], in_store: set[str]) -> None:
    for out in outputs:
        if out.is_dir and out.md5 in in_store:
            hints.remember(out.path, out.md5)
    hints.save()


def pull(
    cache: LocalStore,
    store: ObjectStore,
    root: Path,
    outputs: Iterable[Tracked],
    *,
    run_cache: bool = False,
    jobs: int = 16,
    progress: Progress | None = None,
    hash_many: HashMany | None = None,
    hints: DirHints | None = None,
    force: bool = False,
    remember: Remember | None = None,
) -> Report:
    """Fetch into the cache what the outputs need and it lacks (verified), check the outputs
    out into `root`, and with `run_cache` copy the store's run entries into the cache.
    Workspace changes in no cache are kept (UnsavedChanges at the end) unless `force`.
    `remember` is told of every file written, so the next run or pull reads none of them.
    Outputs DVC 2.x recorded come from the store's 2.x layout into the cache's, as with
    `dvc pull`; `hash_many` and `remember` (3.x md5s) are not used for them."""
    progress, hints = progress or Quiet(), hints or DirHints()
    report = Report()
    outputs = list(outputs)
    unsaved: list[UnsavedChanges] = []
    with Hasher(root=root) as own:  # without the caller's: no state cache, every file read
        legacy = [o for o in outputs if o.legacy]
        if legacy:
            views = cache.legacy_view(), store.legacy_view()

            def legacy_md5s(paths: list[Path]) -> list[str]:
                return [own.legacy_md5(p) for p in paths]

            layout = Layout(*views, legacy_md5s, None)
            report.add(_pull_objects(layout, root, legacy, jobs, progress, hints, force, unsaved))
        layout = Layout(cache, store, hash_many or hashes_of(own), remember)
        current = [o for o in outputs if not o.legacy]
        report.add(_pull_objects(layout, root, current, jobs, progress, hints, force, unsaved))
    if run_cache:
        report.runs = copy_runs(store, cache, store.all_runs(), jobs, progress)
    if report.failed:
        kept = [p for exc in unsaved for p in exc.paths]
        raise TransferIncomplete(f"pull from {store.url}", report.failed, kept)
    if unsaved:
        paths = [p for exc in unsaved for p in exc.paths]
        raise UnsavedChanges(paths, [o for exc in unsaved for o in exc.outputs])
    return report


@dataclass(frozen=True)
class Layout:
    """One object layout of a pull (DVC 3's, or 2.x's): its cache, store and hashing."""

    cache: LocalStore
    store: ObjectStore
    hash_many: HashMany
    remember: Remember | None


def _pull_objects(
    layout: Layout,
    root: Path,
    outputs: list[Tracked],
    jobs: int,
    progress: Progress,
    hints: DirHints,
    force: bool,
    unsaved: list[UnsavedChanges],
) -> Report:
    """Fetch and check out the outputs of one layout; those that would lose unsaved
    changes are added to `unsaved`."""
    cache, store, remember = layout.cache, layout.store, layout.remember
    report = Report()
    wanted = {o.md5 for o in outputs if o.push}

    dirs = {m for m in wanted if m.endswith(".dir")}
    missing_dirs = dirs - cache.exists_many(dirs)
    progress.start(f"pulling from {store.url}", len(missing_dirs))
    report.moved = fetch_objects(store, cache, missing_dirs, jobs, report.failed, progress)
    files = {m for m in wanted if not m.endswith(".dir")}
    for md5 in dirs - report.failed.keys():
        try:
            files.update(m for _, m in parse_manifest(cache.get_bytes(md5)))
        except (ObjectMissing, CorruptObject, ValueError, KeyError) as exc:
            report.failed[md5] = f"{md5} not usable: {exc}"
    if cache.links.links_objects:  # workspace files will be these objects: no corrupt one
        drop_corrupt(cache, files)
    todo = files - cache.exists_many(files)
    fresh = FreshOutputs(
        cache, root, [o for o in outputs if o.md5 not in report.failed], todo, remember
    )

    progress.start(f"pulling from {store.url}", len(todo))
    try:
        report.moved += fetch_objects(
            store, cache, todo, jobs, report.failed, progress, then=fresh.arrived
        )
    finally:
        placed = fresh.finish()  # and an output not written whole is removed again
    report.present = len(files | dirs) - len(todo) - len(missing_dirs)
    _remember(hints, outputs, missing_dirs - report.failed.keys())
    rest = [o for o in outputs if o.path not in placed]
    report.checked_out = sum(placed.values())
    report.checked_out += _checkout_all(
        cache, root, rest, report.failed, progress, layout.hash_many, force, unsaved, remember
    )
    return report


def _checkout_all(
    cache: LocalStore,
    root: Path,
    outputs: list[Tracked],
    failed: dict[str, str],
    progress: Progress,
    hash_many: HashMany,
    force: bool,
    unsaved: list[UnsavedChanges],
    remember: Remember | None,
) -> int:
    """Check each output out; one that would lose unsaved changes is left as it is (and
    added to `unsaved`), the others still done. `cache: false` outputs are not DVC's to
    check out."""
    usable = [
        o for o in outputs if o.cache and o.md5 not in failed and (o.push or cache.exists(o.md5))
    ]
    progress.start("checking out", len(usable))
    written = 0
    for out in usable:
        try:
            written += checkout(cache, root, out, hash_many, remember, force=force)
        except UnsavedChanges as exc:
            unsaved.append(exc)
        except (ObjectMissing, CorruptObject) as exc:
            if exc.oid not in failed:  # else its download failure says it already
                failed[out.md5] = f"cannot check out '{out.path}': {exc}"
        progress.advance()
    return written
