"""md5s of many files, read on a thread pool: hashlib releases the GIL, so large files hash
in parallel."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from executor.hashing.digests import file_md5

# Small files go to the pool in batches: one task per file costs more than hashing it.
_BATCH_FILES = 64
_BATCH_BYTES = 8 * 1024 * 1024
_INLINE_BYTES = 1024 * 1024

StatedFile = tuple[str, os.stat_result]  # absolute path, its stat when it was listed


class ReadPool:
    """Reads files' md5s on up to `workers` threads, started when first needed. Safe to share
    between threads."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def md5s(self, todo: list[StatedFile]) -> list[str]:
        """The md5 of each file, in order; a few small files are read on this thread."""
        total = sum(st.st_size for _, st in todo)
        if len(todo) == 1 or (total <= _INLINE_BYTES and len(todo) <= _BATCH_FILES):
            return _hash_batch(todo)
        batches: list[list[StatedFile]] = [[]]
        size = 0
        order = sorted(range(len(todo)), key=lambda i: -todo[i][1].st_size)  # largest first
        for item in (todo[i] for i in order):
            if len(batches[-1]) >= _BATCH_FILES or size >= _BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += item[1].st_size
        digests = [md5 for done in self._executor().map(_hash_batch, batches) for md5 in done]
        result = [""] * len(todo)
        for i, md5 in zip(order, digests, strict=True):
            result[i] = md5
        return result

    def close(self) -> None:
        """Stop the threads (a later md5s starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="hash")
            return self._pool


def _hash_batch(batch: Sequence[StatedFile]) -> list[str]:
    return [file_md5(path, st.st_size, st) for path, st in batch]
