"""Objects moved on a bounded thread pool, with progress; what fails per object is collected,
what fails for every object (denied, unreachable, disk full) stops the transfer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Protocol

from executor.errors import CorruptObject, ObjectMissing


class Progress(Protocol):
    """Where a transfer reports what it is doing (the CLI draws rich bars)."""

    def start(self, what: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class Quiet:
    """No progress shown."""

    def start(self, what: str, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


def each(
    items: Iterable[str],
    fn: Callable[[str], None],
    jobs: int,
    progress: Progress,
    failed: dict[str, str] | None,
) -> int:
    """Run `fn` on every item on a bounded pool; how many succeeded. Per-object failures
    (missing, corrupt) go into `failed` (None: they stop it too); anything else (denied,
    unreachable, disk full) stops the whole transfer."""
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
                    if failed is None:
                        raise
                    failed[futures[future]] = str(exc)
                progress.advance()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done
