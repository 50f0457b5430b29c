"""The one way objects move between a store and a local cache, in both directions: on a
bounded pool (store.pool.each), each object verified against its name and written whole.
Push and pull, the fleet's coordinator (inputs up, outputs home) and a worker's local cache
all move objects through these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from executor.store.base import ObjectStore
from executor.store.local import OBJECT_MODE, LocalStore
from executor.store.pool import Progress, Quiet, each


def fetch_objects(
    store: ObjectStore,
    cache: LocalStore,
    md5s: Iterable[str],
    jobs: int,
    failed: dict[str, str] | None,
    progress: Progress | None = None,
    then: Callable[[str], None] | None = None,
) -> int:
    """Download each object into `cache` (read-only, as DVC keeps objects); `then(md5)`
    after each one arrived. How many arrived; per-object failures (missing, corrupt) go
    into `failed`, or with None are raised."""

    def fetch(md5: str) -> None:
        store.get_file(md5, cache.object_path(md5), mode=OBJECT_MODE)
        if then is not None:
            then(md5)

    return each(md5s, fetch, jobs, progress or Quiet(), failed)


def put_objects(
    store: ObjectStore,
    path_of: Callable[[str], str | Path],
    md5s: Iterable[str],
    jobs: int,
    failed: dict[str, str],
    progress: Progress | None = None,
    before: Callable[[], None] | None = None,
) -> int:
    """Upload each object from the file `path_of(md5)` (already hashed: not read twice);
    `before()` before each one may raise to stop (a cancel). How many went."""

    def put(md5: str) -> None:
        if before is not None:
            before()
        store.put_file(md5, Path(path_of(md5)), check=False)

    return each(md5s, put, jobs, progress or Quiet(), failed)
