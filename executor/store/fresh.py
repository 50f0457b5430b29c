"""Outputs with nothing at their path yet, written during a pull as their objects arrive."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from executor.confine import inside
from executor.errors import CorruptObject, ObjectMissing, WorkspaceError
from executor.store.checkout import files_of, place
from executor.store.local import LocalStore
from executor.store.tracked import Tracked

Remember = Callable[[list[tuple[Path, str]]], None]  # (path, md5) of files just written


class FreshOutputs:
    """Outputs with nothing at their path yet, written file by file as their objects arrive:
    the workspace copy overlaps the downloads instead of following them all.

    Only outputs whose every object is being fetched take part; one whose files did not all
    arrive is removed again and left to the usual checkout (which reports what is missing).
    """

    def __init__(
        self,
        cache: LocalStore,
        root: Path,
        outputs: list[Tracked],
        todo: set[str],
        remember: Remember | None = None,
    ) -> None:
        self.cache = cache
        self._remember = remember
        self._written: dict[str, list[tuple[Path, str]]] = {}  # output path -> files written
        self._paths: dict[str, list[tuple[str, str, bool]]] = {}  # md5 -> (out, path, isexec)
        self._left: dict[str, int] = {}  # output path -> files not yet written
        self._files: dict[str, int] = {}  # output path -> its number of files
        self._dests: dict[str, Path] = {}
        self._made: set[str] = set()  # folders known to exist
        self._lock = threading.Lock()
        for out in outputs:
            if not out.push or not out.cache or out.only:  # a part: the usual checkout
                continue
            try:
                dest = inside(root, out.path)
                if os.path.lexists(dest):
                    continue
                files = files_of(cache, out)
            except (ObjectMissing, CorruptObject, ValueError, KeyError, WorkspaceError):
                continue  # the usual checkout says what is wrong
            if not files or not all(md5 in todo for _, md5, _ in files):
                continue
            self._dests[out.path] = dest
            self._left[out.path] = self._files[out.path] = len(files)
            for rel, md5, isexec in files:
                path = os.path.join(dest, rel) if rel else str(dest)
                self._paths.setdefault(md5, []).append((out.path, path, isexec))

    def arrived(self, md5: str) -> None:
        """Write every file of a fresh output that is this (verified, cached) object."""
        for out, path, isexec in self._paths.get(md5, ()):
            folder = os.path.dirname(path)
            if folder not in self._made:  # a set lookup, not three system calls per file
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            place(self.cache, path, md5, isexec)
            with self._lock:
                self._left[out] -= 1
                self._written.setdefault(out, []).append((Path(path), md5))

    def finish(self) -> dict[str, int]:
        """Outputs written whole -> their number of files; the others' files are removed."""
        done: dict[str, int] = {}
        for out, left in self._left.items():
            if left == 0:
                done[out] = self._files[out]
                if self._remember is not None:
                    self._remember(self._written.get(out, []))
                continue
            dest = self._dests[out]
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif os.path.lexists(dest):
                dest.unlink()
        return done
