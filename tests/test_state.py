"""State cache: unchanged files are not read again, changed ones are, and it never fails a run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from executor import state as state_module
from executor.hashing.digests import file_md5
from executor.hashing.hasher import Hasher
from executor.state import StateDB

HOUR_NS = 3600 * 10**9


def age(*paths: Path, ns: int | None = None) -> None:
    """Set mtimes an hour back (or to `ns`): files modified just now are not remembered."""
    when = ns if ns is not None else time.time_ns() - HOUR_NS
    for path in paths:
        os.utime(path, ns=(when, when))


def make_tree(top: Path, count: int = 20) -> list[Path]:
    paths = []
    for i in range(count):
        path = top / f"d{i % 3}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {i}\n")
        paths.append(path)
    age(*paths)
    return paths


def replace_keeping_stat(path: Path, content: bytes) -> None:
    """Same inode, size and mtime_ns, different bytes: only a real read could notice."""
    before = path.stat()
    assert len(content) == before.st_size
    with open(path, "r+b") as f:
        f.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "tmp" / "executor" / "state.sqlite"


def test_second_pass_reads_no_file_content(tmp_path: Path, db: Path) -> None:
    paths = make_tree(tmp_path / "data")
    with Hasher(db) as h:
        first = h.hash_tree(tmp_path / "data")
        single = h.hash_file(paths[0])
        assert h.files_read == len(paths)  # hash_file found what hash_tree remembered
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data") == first
        assert h.hash_file(paths[0]) == single
        assert h.hash_many(paths)[0] == single
        assert (h.files_read, h.bytes_read) == (0, 0)


def test_a_rewrite_with_its_old_mtime_put_back_is_hashed_again(tmp_path: Path, db: Path) -> None:
    """Size, inode and mtime as remembered, new bytes: only the ctime, which no process can
    set, tells (a stage could otherwise pass another stage's rewritten script off)."""
    paths = make_tree(tmp_path / "data")
    with Hasher(db) as h:
        first = h.hash_tree(tmp_path / "data")
    replace_keeping_stat(paths[0], b"CONTENT 0\n")
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data") != first
        assert h.files_read == 1


@pytest.mark.parametrize("same_hasher", [False, True], ids=["next-run", "same-run"])
@pytest.mark.parametrize("change", ["size", "mtime", "inode"])
def test_changed_files_are_hashed_again(
    tmp_path: Path, db: Path, change: str, same_hasher: bool
) -> None:
    paths = make_tree(tmp_path / "data")
    target = paths[5]
    first = Hasher(db)
    first.hash_tree(tmp_path / "data")
    if not same_hasher:
        first.close()
    old = target.stat()
    if change == "size":
        target.write_text("longer content 5\n")
        age(target, ns=old.st_mtime_ns)
    elif change == "mtime":
        replace_keeping_stat(target, b"CONTENT 5\n")
        age(target, ns=old.st_mtime_ns - 10**9)
    else:
        replacement = target.with_suffix(".new")
        replacement.write_text("CONTENT 5\n")
        age(replacement, ns=old.st_mtime_ns)
        replacement.replace(target)
        assert target.stat().st_ino != old.st_ino
    with first if same_hasher else Hasher(db) as h:
        read_before = h.files_read
        _, entries, _ = h.hash_tree(tmp_path / "data")
        assert h.files_read - read_before == 1
    assert {e.relpath: e.md5 for e in entries}[f"d2/{target.name}"] == file_md5(target)


def test_rows_of_deleted_files_are_forgotten(tmp_path: Path, db: Path) -> None:
    paths = make_tree(tmp_path / "data")
    (tmp_path / "data_2").mkdir()  # shares the prefix "data", must keep its rows
    outside = make_tree(tmp_path / "data_2", count=2)
    with Hasher(db) as h:
        h.hash_tree(tmp_path / "data")
        h.hash_tree(tmp_path / "data_2")
    for path in paths[:5]:
        path.unlink()
    with Hasher(db) as h:
        h.hash_tree(tmp_path / "data")
        assert h.files_read == 0
    with sqlite3.connect(db) as conn:
        rows = {os.fsdecode(raw) for (raw,) in conn.execute("SELECT path FROM files")}
    assert rows == {str(p) for p in paths[5:] + outside}


def test_recently_modified_files_are_not_remembered(tmp_path: Path, db: Path) -> None:
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("a\n")
    first = fresh.stat()
    with Hasher(db) as h:
        h.hash_file(fresh)
    # Rewritten within one tick of a coarse filesystem clock, the file keeps its mtime.
    replace_keeping_stat(fresh, b"b\n")
    assert fresh.stat().st_mtime_ns == first.st_mtime_ns
    with Hasher(db) as h:
        assert h.hash_file(fresh).md5 == file_md5(fresh)
        assert h.files_read == 1


def test_corrupt_database_is_recreated(tmp_path: Path, db: Path) -> None:
    paths = make_tree(tmp_path / "data")
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a sqlite database" * 100)
    with Hasher(db) as h:
        expected = h.hash_tree(tmp_path / "data")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM files").fetchone() == (len(paths),)
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data") == expected
        assert h.files_read == 0


def test_database_broken_while_open_is_recreated(tmp_path: Path, db: Path) -> None:
    paths = make_tree(tmp_path / "data")
    with Hasher(db) as h:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE files")
        assert h.hash_file(paths[0]).md5 == file_md5(paths[0])
        h.hash_tree(tmp_path / "data")
    with Hasher(db) as h:
        h.hash_tree(tmp_path / "data")
        assert h.files_read == 0


def test_unusable_database_path_only_disables_the_cache(tmp_path: Path) -> None:
    where = tmp_path / "state.sqlite"
    where.mkdir()  # a directory where the file should be
    paths = make_tree(tmp_path / "data")
    for _ in range(2):
        with Hasher(where) as h:
            h.hash_tree(tmp_path / "data")
            assert h.files_read == len(paths)


def test_locked_database_does_not_block_hashing(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "BUSY_TIMEOUT_S", 0.05)
    paths = make_tree(tmp_path / "data")
    with Hasher(db):
        pass
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Hasher(db) as h:
            info = h.hash_tree(tmp_path / "data")[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data")[0] == info
        assert h.files_read == len(paths)  # nothing was written while locked


def test_threads_share_one_hasher(tmp_path: Path, db: Path) -> None:
    make_tree(tmp_path / "data", count=200)
    results: list[object] = []
    errors: list[BaseException] = []
    with Hasher(db, workers=4) as h:
        expected = Hasher().hash_tree(tmp_path / "data")

        def work() -> None:
            try:
                for _ in range(3):
                    results.append(h.hash_tree(tmp_path / "data"))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert results == [expected] * 24
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data") == expected
        assert h.files_read == 0


CHILD = """
import sys
from pathlib import Path
from executor.hashing.hasher import Hasher
with Hasher(Path(sys.argv[1])) as h:
    for _ in range(5):
        print(h.hash_tree(Path(sys.argv[2]))[0].md5)
"""


def test_two_processes_share_one_database(tmp_path: Path, db: Path) -> None:
    make_tree(tmp_path / "data", count=300)
    expected = Hasher().hash_tree(tmp_path / "data")[0].md5
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-c", CHILD, str(db), str(tmp_path / "data")]
    children = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.split() == [expected] * 5
        assert "Traceback" not in err
    with Hasher(db) as h:
        assert h.hash_tree(tmp_path / "data")[0].md5 == expected
        assert h.files_read == 0


def test_inodes_above_2_63_are_stored(tmp_path: Path) -> None:
    state = StateDB(tmp_path / "s.sqlite")
    fields = [0o100644, (1 << 64) - 5, 1, 1, 0, 0, 10, 0, 0, 0, 0.0, 0.0, 0.0, 0, 10**9, 0]
    st = os.stat_result(fields + [None] * (os.stat_result.n_fields - len(fields)))
    state.put_many([("/x", st, "a" * 32)], seen_ns=time.time_ns())
    state.flush()
    assert state.get_many([("/x", st)]) == {"/x": "a" * 32}
    assert state.get_many([("/x", st)], under="/") == {"/x": "a" * 32}
    state.close()
