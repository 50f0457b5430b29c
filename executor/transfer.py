"""Push and pull: the objects a repository's outputs need, between its cache and a store.

As `dvc push`/`dvc pull` do, and in the same layout. Cost follows what has to move: presence
is asked in batches (HEAD for a few objects, one listing for many), and a `.dir` object in the
store stands for all of its files, because DVC and executor both upload it only after them.
Objects are moved on a bounded thread pool over the store's one client; every download is
verified before it enters the cache. Run-cache entries go after the objects, executor's
records before their entries (an entry never shows up without its record).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from executor import yamlio
from executor.errors import CorruptObject, ExecutorError
from executor.hashing import parse_manifest
from executor.store.base import ObjectStore, RunFile, run_key
from executor.store.checkout import HashMany, checkout
from executor.store.errors import ObjectMissing, TransferIncomplete
from executor.store.local import OBJECT_MODE, LocalStore
from executor.store.tracked import Tracked


class Progress(Protocol):
    """Where a transfer reports what it is doing (the CLI draws rich bars)."""

    def start(self, what: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class _Quiet:
    def start(self, what: str, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


@dataclass
class Report:
    """What a push or pull did."""

    moved: int = 0  # objects transferred
    present: int = 0  # objects already where they were needed
    runs: int = 0  # run-cache entries and records transferred
    checked_out: int = 0  # files written into the workspace (pull)
    failed: dict[str, str] = field(default_factory=dict)  # object -> why


def push(
    cache: LocalStore,
    store: ObjectStore,
    outputs: Iterable[Tracked],
    *,
    run_cache: bool = False,
    jobs: int = 16,
    progress: Progress | None = None,
) -> Report:
    """Upload what the outputs (and, with `run_cache`, every run entry) need and the store
    lacks; TransferIncomplete at the end if some objects could not be uploaded."""
    progress = progress or _Quiet()
    report = Report()
    wanted = {o.md5 for o in outputs if o.push}
    runs = cache.all_runs() if run_cache else {}
    wanted |= _entry_objects(cache, runs)
    progress.start("checking the store", len(wanted))
    present = store.exists_many(wanted)
    contents: dict[str, set[str]] = {}
    for md5 in sorted(m for m in wanted - present if m.endswith(".dir")):
        try:
            contents[md5] = {m for _, m in parse_manifest(cache.get_bytes(md5))}
        except (ObjectMissing, CorruptObject, ValueError, KeyError) as exc:
            report.failed[md5] = f"{md5} not usable in the local cache: {exc}"
    files = {m for m in wanted if not m.endswith(".dir")}.union(*contents.values())
    present |= store.exists_many(files - wanted)  # `wanted` was asked about already
    todo = files - present
    for md5 in todo - cache.exists_many(todo):
        report.failed[md5] = f"object {md5} is missing from the local cache {cache.root}"
    todo -= report.failed.keys()

    def upload(md5: str) -> None:
        store.put_file(md5, Path(cache.object_str(md5)), check=False)

    progress.start(f"pushing to {store.url}", len(todo))
    report.moved = _each(todo, upload, jobs, progress, report.failed)
    ready = [d for d, fs in contents.items() if not fs & report.failed.keys()]
    report.moved += _each(ready, upload, jobs, progress, report.failed)  # .dir after its files
    report.present = len(present)
    if run_cache:
        report.runs = _copy_runs(cache, store, runs, jobs, progress)
    if report.failed:
        raise TransferIncomplete(f"push to {store.url}", report.failed)
    return report


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
) -> Report:
    """Fetch into the cache what the outputs need and it lacks (verified), check the outputs
    out into `root`, and with `run_cache` copy the store's run entries into the cache."""
    progress = progress or _Quiet()
    report = Report()
    outputs = list(outputs)
    wanted = {o.md5 for o in outputs if o.push}

    def fetch(md5: str) -> None:
        dest = cache.object_path(md5)
        store.get_file(md5, dest)
        os.chmod(dest, OBJECT_MODE)

    dirs = {m for m in wanted if m.endswith(".dir")}
    missing_dirs = dirs - cache.exists_many(dirs)
    progress.start(f"pulling from {store.url}", len(missing_dirs))
    report.moved = _each(missing_dirs, fetch, jobs, progress, report.failed)
    files = {m for m in wanted if not m.endswith(".dir")}
    for md5 in dirs - report.failed.keys():
        try:
            files.update(m for _, m in parse_manifest(cache.get_bytes(md5)))
        except (ObjectMissing, CorruptObject, ValueError, KeyError) as exc:
            report.failed[md5] = f"{md5} not usable: {exc}"
    todo = files - cache.exists_many(files)
    progress.start(f"pulling from {store.url}", len(todo))
    report.moved += _each(todo, fetch, jobs, progress, report.failed)
    report.present = len(files | dirs) - len(todo) - len(missing_dirs)
    report.checked_out = _checkout_all(cache, root, outputs, report.failed, progress, hash_many)
    if run_cache:
        report.runs = _copy_runs(store, cache, store.all_runs(), jobs, progress)
    if report.failed:
        raise TransferIncomplete(f"pull from {store.url}", report.failed)
    return report


def _checkout_all(
    cache: LocalStore,
    root: Path,
    outputs: list[Tracked],
    failed: dict[str, str],
    progress: Progress,
    hash_many: HashMany | None,
) -> int:
    hasher = hash_many or _md5_each
    usable = [o for o in outputs if o.md5 not in failed and (o.push or cache.exists(o.md5))]
    progress.start("checking out", len(usable))
    written = 0
    for out in usable:
        try:
            written += checkout(cache, root, out, hasher)
        except (ObjectMissing, CorruptObject) as exc:
            if exc.oid not in failed:  # else its download failure says it already
                failed[out.md5] = f"cannot check out '{out.path}': {exc}"
        progress.advance()
    return written


def _md5_each(paths: list[Path]) -> list[str]:
    from executor.hashing import file_md5

    return [file_md5(p) for p in paths]


def _each(
    items: Iterable[str],
    fn: Callable[[str], None],
    jobs: int,
    progress: Progress,
    failed: dict[str, str],
) -> int:
    """Run `fn` on every item on a bounded pool; how many succeeded. Per-object failures
    (missing, corrupt) go into `failed`; anything else (denied, unreachable, disk full) stops
    the whole transfer."""
    items = list(items)
    if not items:
        return 0
    done = 0
    with ThreadPoolExecutor(max(1, min(jobs, len(items)))) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        try:
            for future in as_completed(futures):
                try:
                    future.result()
                    done += 1
                except (ObjectMissing, CorruptObject) as exc:
                    failed[futures[future]] = str(exc)
                progress.advance()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done


def _entry_objects(cache: LocalStore, runs: dict[str, list[RunFile]]) -> set[str]:
    """Objects that local run entries name and the cache holds, so that the entries pushed are
    usable elsewhere (DVC pushes the entries alone)."""
    named: set[str] = set()
    for key, files in runs.items():
        for run in files:
            try:
                entry = yamlio.load_text((cache.read_run(key, run.value) or b"").decode(), key)
                named.update(str(o["md5"]) for o in entry.get("outs") or [] if "md5" in o)
            except (ExecutorError, AttributeError, TypeError, UnicodeDecodeError):
                continue  # an unreadable entry is DVC's to report; it is pushed as it is
    return cache.exists_many(named)


def _copy_runs(
    src: ObjectStore,
    dest: ObjectStore,
    runs: dict[str, list[RunFile]],
    jobs: int,
    progress: Progress,
) -> int:
    """Copy run entries `dest` lacks (their names are their content), records first."""
    have = dest.all_runs()
    names = {(k, f.value) for k, fs in have.items() for f in fs}
    todo = [(k, f) for k, fs in runs.items() for f in fs if (k, f.value) not in names]
    records = src.all_records() - dest.all_records()
    progress.start("copying run-cache entries", len(todo) + len(records))

    def record(kv: str) -> None:
        key, value = kv.split("/")
        data = src.read_record(key, value)
        if data is not None:
            dest.write_record(key, value, data)

    def entry(kv: str) -> None:
        key, value = kv.split("/")
        data = src.read_run(key, value)
        if data is None:
            return
        dest.write_run(key, value, data)
        if isinstance(dest, LocalStore):  # keep "newest entry wins" as the store had it
            mtime = next(f.mtime for f in runs[key] if f.value == value)
            os.utime(dest.root / run_key(key, value), (mtime, mtime))

    failed: dict[str, str] = {}
    _each([f"{k}/{v}" for k, v in records], record, jobs, progress, failed)
    return _each([f"{k}/{f.value}" for k, f in todo], entry, jobs, progress, failed)
