"""Run-cache entries (DVC's `runs/`) and executor's records copied between stores."""

from __future__ import annotations

import os

from executor import yamlio
from executor.errors import ExecutorError
from executor.store.base import ObjectStore, RunFile, run_key
from executor.store.local import LocalStore
from executor.store.pool import Progress, each


def entry_objects(cache: LocalStore, runs: dict[str, list[RunFile]]) -> set[str]:
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


def copy_runs(
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
    each([f"{k}/{v}" for k, v in records], record, jobs, progress, failed)
    return each([f"{k}/{f.value}" for k, f in todo], entry, jobs, progress, failed)
