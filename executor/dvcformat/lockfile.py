"""Reading dvc.lock files and rewriting one stage's entry at a time, atomically, as DVC does."""

from __future__ import annotations

import glob
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from executor import yamlio
from executor.durable import publish
from executor.dvcformat.entry import Entry, plain
from executor.errors import PipelineError
from executor.processes import pid_alive

SCHEMA = "2.0"


def read_lock(root: Path, lockfile: str) -> dict[str, Entry]:
    """Stage name -> entry (plain values) of one dvc.lock; {} if there is none."""
    path = root / lockfile
    try:
        text = yamlio.read_text(path, lockfile)
    except FileNotFoundError:
        return {}
    data = yamlio.load_text(text, lockfile)
    if not data:
        return {}
    if not isinstance(data, Mapping) or not isinstance(data.get("stages", {}), Mapping):
        raise PipelineError("not a dvc.lock file (expected `schema` and `stages`)", path=lockfile)
    entries = {str(name): plain(entry) for name, entry in (data.get("stages") or {}).items()}
    for name, entry in entries.items():
        _check_entry(name, entry, lockfile)
    return entries


def _check_entry(name: str, entry: Any, lockfile: str) -> None:
    """The shape DVC's lock schema demands, so a damaged file is a message, not a crash."""
    where = f"stage '{name}'"
    if not isinstance(entry, Mapping):
        raise PipelineError(f"{where}: the entry must be a mapping", path=lockfile)
    for part in ("deps", "outs"):
        items = entry.get(part, [])
        if not isinstance(items, list) or not all(
            isinstance(i, Mapping) and isinstance(i.get("path"), str) for i in items
        ):
            raise PipelineError(
                f"{where}: `{part}` must be a list of entries with a `path`; "
                "fix or delete dvc.lock (executor run rebuilds it)",
                path=lockfile,
            )
    params = entry.get("params", {})
    if not isinstance(params, Mapping) or not all(isinstance(v, Mapping) for v in params.values()):
        raise PipelineError(f"{where}: `params` must map files to values", path=lockfile)
    cmd = entry.get("cmd")
    if not isinstance(cmd, str | list):
        raise PipelineError(
            f"{where}: validation failed: `cmd` must be a string or a list; "
            "fix or delete dvc.lock (executor run rebuilds it)",
            path=lockfile,
        )
    for part in ("deps", "outs"):
        for index, item in enumerate(entry.get(part, [])):
            for key, value in item.items():
                if not _valid(key, value):
                    raise PipelineError(
                        f"{where}: validation failed: {part}[{index}] ({item['path']}): "
                        f"`{key}: {value!r}` is not a valid {key}; fix or delete dvc.lock "
                        "(executor run rebuilds it)",
                        path=lockfile,
                    )


# The field types of DVC's lock schema (dvc/schema.py DATA_SCHEMA): a value DVC refuses
# ("validation failed") must not be trusted either.
_INTS = ("size", "nfiles")
_STRS = ("hash", "version_id")
_CHECKSUMS = ("md5", "etag", "checksum")


def _valid(key: str, value: Any) -> bool:
    if key in _INTS:
        return isinstance(value, int)  # a bool too: voluptuous takes it as an int, as DVC
    if key == "isexec":
        return isinstance(value, bool)
    if key in _STRS:
        return isinstance(value, str)
    if key in _CHECKSUMS:  # None, "", or at least 3 characters (an int is read as its digits)
        if value is None or value == "":
            return True
        return isinstance(value, str | int) and len(str(value)) >= 3
    if key == "files":  # a directory's listing: entries with a relpath and valid fields
        return isinstance(value, list) and all(
            isinstance(f, Mapping)
            and isinstance(f.get("relpath"), str)
            and all(_valid(str(k), v) for k, v in f.items() if k != "files")
            for f in value
        )
    return True


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, never half-written."""
    _remove_leftovers(path)
    prefix = f".{path.name}.{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        publish(tmp, path, synced=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_leftovers(path: Path) -> None:
    """Temporaries of a writer killed before its rename (`.dvc.lock.PID-XXXX.tmp`): git would
    list them as untracked files."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].partition("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    """The file's version; with the ctime, which no process can set back, so a stage that
    rewrites dvc.lock in place and restores its mtime is still seen to have changed it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class LockWriter:
    """Writes stage entries into dvc.lock files, never half-written.

    Like DVC's Lockfile.dump_stages: the file is read round-trip, each stage's entry replaced
    in place or appended, and the file written back; a new file starts with `schema: '2.0'`.
    The parsed document is kept between writes and re-read only if someone else changed the
    file, so recording stage after stage does not re-parse a growing file each time.
    """

    def __init__(self, root: Path, log: Callable[[str], None] = lambda _msg: None) -> None:
        self.root = root
        self.log = log
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[tuple[int, int, int, int] | None, Any]] = {}
        # Documents read and left as they were: not "ours" (see `wrote`), but not parsed again
        # while the file keeps that stat (a restore that changes no entry writes nothing).
        self._read: dict[str, tuple[tuple[int, int, int, int], Any]] = {}
        self._empty: set[str] = set()  # absent when the run began: the first write starts anew

    def start_empty(self, lockfiles: Iterable[str]) -> None:
        """Those of `lockfiles` absent now are first written from an empty document: a file
        that appears meanwhile (a stage's, when none existed to mount read-only) is no base."""
        self._empty.update(f for f in lockfiles if not (self.root / f).exists())

    def _document(self, lockfile: str) -> Any:
        path = self.root / lockfile
        key = _stat_key(path)
        cached = self._docs.get(lockfile)
        if cached is not None and cached[0] == key and key is not None:
            return cached[1]
        seen = self._read.get(lockfile)
        if seen is not None and seen[0] == key and lockfile not in self._empty:
            return seen[1]
        try:
            text = "" if lockfile in self._empty else yamlio.read_text(path, lockfile)
        except FileNotFoundError:
            text = ""
        data = yamlio.load_roundtrip(text, lockfile) if text.strip() else None
        if not data:
            from ruamel.yaml.comments import CommentedMap

            data = CommentedMap()
            data["schema"] = SCHEMA
            self.log(f"Generating lock file '{lockfile}'")
        return data

    def wrote(self, lockfile: str) -> bool:
        """Whether `lockfile` is still the file this writer last wrote. Under the writer's
        lock: between a write's rename and its record, the new file would look foreign."""
        with self._lock:
            cached = self._docs.get(lockfile)
            return (
                cached is not None
                and cached[0] is not None
                and (cached[0] == _stat_key(self.root / lockfile))
            )

    def rewrite(self, lockfile: str) -> bool:
        """Put back the file this writer last wrote, changed by someone else since (a stage
        that had no read-only mount of it); False if this writer wrote none."""
        with self._lock:
            cached = self._docs.get(lockfile)
            if cached is None:
                return False
            path = self.root / lockfile
            write_atomic(path, yamlio.dump(cached[1]))
            self._docs[lockfile] = (_stat_key(path), cached[1])
            return True

    def write(self, lockfile: str, name: str, entry: Mapping[str, Any]) -> bool:
        """Record `entry` for stage `name`; True if the file changed."""
        return self.write_many(lockfile, [(name, entry)])

    def write_many(self, lockfile: str, entries: list[tuple[str, Mapping[str, Any]]]) -> bool:
        """Record several stages' entries with one rewrite; True if the file changed."""
        path = self.root / lockfile
        with self._lock:
            before = _stat_key(path)  # taken first: a change while reading is seen next time
            data = self._document(lockfile)
            stages = data.get("stages")
            if stages is None:
                data["stages"] = stages = {}
            changed = [(n, e) for n, e in entries if plain(stages.get(n)) != plain(e)]
            if not changed:
                if before is not None and lockfile not in self._empty:
                    self._read[lockfile] = (before, data)
                return False
            self.log(f"Updating lock file '{lockfile}'")
            for name, entry in changed:
                # A fresh copy: values shared between entries (one params dict read once for
                # many stages) would otherwise be dumped as YAML anchors and aliases.
                stages[name] = plain(entry)
            try:
                write_atomic(path, yamlio.dump(data))
            except BaseException:
                self._docs.pop(lockfile, None)  # the document no longer matches the file
                raise
            self._docs[lockfile] = (_stat_key(path), data)
            self._read.pop(lockfile, None)
            self._empty.discard(lockfile)
            return True
