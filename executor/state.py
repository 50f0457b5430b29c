"""Remembered file hashes, so that unchanged files are not read again (DVC's state database).

A row maps a path to the (inode, size, mtime_ns, ctime_ns) it had when hashed, and its md5. A hit
needs all four to match: a process can set a file's mtime back after rewriting it (utimensat),
but not its ctime, so a stage cannot pass a rewritten file off as the one remembered. SQLite in
WAL mode with short transactions lets threads and processes share one file. It is only a cache:
a locked, corrupt or unwritable database never fails a run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: ctime_ns in the key
FLUSH_EVERY = 2000
BUSY_TIMEOUT_S = 5.0
# A file modified within this window before it was looked at may change again with the same
# mtime (coarse kernel clocks, 1-2 s on FAT/HFS+/some NFS), so it is not remembered (git's
# "racy clean" problem: https://git-scm.com/docs/racy-git).
RACY_NS = 2_000_000_000
_QUERY_CHUNK = 500
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

_Key = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
_Row = tuple[bytes, int, int, int, int, str]
T = TypeVar("T")


def _key(st: os.stat_result) -> _Key:
    # SQLite integers are signed 64-bit; some filesystems hand out inodes above 2**63.
    ino = st.st_ino - (1 << 64) if st.st_ino >= 1 << 63 else st.st_ino
    return ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class StateDB:
    """Path + stat -> md5, persisted in a SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pending: dict[bytes, _Row] = {}  # not yet written, but already answered
        self._stale: set[bytes] = set()  # rows of files that are gone, to delete
        self._recreated = False
        self._conn: sqlite3.Connection | None = self._open()

    def get_many(
        self, items: Sequence[tuple[str, os.stat_result]], under: str | None = None
    ) -> dict[str, str]:
        """md5 of each path whose inode, size, mtime and ctime are those remembered.

        `under`: the directory these are all the files of, read in one range scan instead of
        lookups; rows of other paths under it are of files that are gone, and are forgotten.
        """
        wanted = {_encode(path): (path, _key(st)) for path, st in items}
        if under is not None:
            prefix = _encode(under.rstrip("/") + "/")
            queries = [_select_range(prefix, prefix[:-1] + b"0")]  # "0" follows "/" in ASCII
        else:
            keys = list(wanted)
            queries = [
                _select(keys[i : i + _QUERY_CHUNK]) for i in range(0, len(keys), _QUERY_CHUNK)
            ]
        found: dict[str, str] = {}
        with self._lock:
            for query in queries:
                rows = self._run(query) or []
                for raw, ino, size, mtime_ns, ctime_ns, md5 in rows:
                    path, key = wanted.get(raw, ("", None))
                    if key == (ino, size, mtime_ns, ctime_ns):
                        found[path] = md5
                    elif key is None:
                        self._stale.add(raw)
            for raw, (path, key) in wanted.items():
                row = self._pending.get(raw)
                if row is not None and row[1:5] == key:
                    found[path] = row[5]
        return found

    def put_many(self, items: Iterable[tuple[str, os.stat_result, str]], seen_ns: int) -> None:
        """Remember md5s of files stat'ed after `seen_ns`, unless modified just before it."""
        rows = [
            (_encode(path), *_key(st), md5)
            for path, st, md5 in items
            if st.st_mtime_ns <= seen_ns - RACY_NS
        ]
        with self._lock:
            self._pending.update((row[0], row) for row in rows)
            if len(self._pending) + len(self._stale) >= FLUSH_EVERY:
                self._flush()

    def flush(self) -> None:
        """Write what is pending (dropped if the database stays locked)."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._flush()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _flush(self) -> None:
        rows, self._pending = list(self._pending.values()), {}
        stale, self._stale = self._stale, set()
        if rows or stale:
            self._run(_write(rows, stale))

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> T | None:
        """`op` on the database; None if there is none, it is busy, or it broke (recreated)."""
        if self._conn is None:
            return None
        try:
            return op(self._conn)
        except sqlite3.DatabaseError as e:
            if not _broken(e):
                raise
            if _is_busy(e):
                log.debug("state database %s is busy (%s); skipped", self.path, e)
                return None
            self._conn.close()
            self._conn = self._recreate(e)
            return None

    def _open(self) -> sqlite3.Connection | None:
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as e:
            if not _broken(e):
                raise
            if _is_busy(e):
                log.debug("state database %s is busy, not used this time", self.path)
                return None
            return self._recreate(e)
        except OSError as e:
            log.warning("state database %s unusable (%s); hashing without it", self.path, e)
            return None

    def _recreate(self, error: Exception) -> sqlite3.Connection | None:
        if self._recreated:
            return None
        self._recreated = True
        log.warning("state database %s is unreadable (%s); recreating it", self.path, error)
        try:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return _connect(self.path)
        except (OSError, sqlite3.DatabaseError) as e:
            log.warning("state database %s unusable (%s); hashing without it", self.path, e)
            return None


def _encode(path: str) -> bytes:
    # os.fsencode on POSIX, minus its overhead; paths that are not UTF-8 survive as surrogates.
    return path.encode("utf-8", "surrogateescape")


def _select_range(low: bytes, high: bytes) -> Callable[[sqlite3.Connection], list[_Row]]:
    sql = (
        "SELECT path, inode, size, mtime_ns, ctime_ns, md5 FROM files WHERE path >= ? AND path < ?"
    )
    return lambda conn: conn.execute(sql, (low, high)).fetchall()


def _select(keys: list[bytes]) -> Callable[[sqlite3.Connection], list[_Row]]:
    marks = ",".join("?" * len(keys))
    sql = f"SELECT path, inode, size, mtime_ns, ctime_ns, md5 FROM files WHERE path IN ({marks})"
    return lambda conn: conn.execute(sql, keys).fetchall()


def _write(rows: list[_Row], stale: set[bytes]) -> Callable[[sqlite3.Connection], None]:
    def write(conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            conn.executemany("DELETE FROM files WHERE path = ?", [(raw,) for raw in stale])
            conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)

    return write


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _broken(error: sqlite3.DatabaseError) -> bool:
    """The database (not our SQL) failed: corrupt, unreadable, missing table, locked."""
    return type(error) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def _is_busy(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if _version(conn) != SCHEMA_VERSION:
            with _transaction(conn):
                if _version(conn) != SCHEMA_VERSION:  # another process may have won the race
                    conn.execute("DROP TABLE IF EXISTS files")
                    conn.execute(
                        "CREATE TABLE files (path BLOB PRIMARY KEY, inode INTEGER NOT NULL,"
                        " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                        " ctime_ns INTEGER NOT NULL, md5 TEXT NOT NULL)"
                        " WITHOUT ROWID"
                    )
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("SELECT 1 FROM files LIMIT 1").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)
