"""Publication is durable: data fsynced before the rename that makes it visible, the folder after.

A power cut cannot be staged in a test; the order of the system calls can be watched. Each
call is recorded with the inode it touched, so a test fails if the data reaching disk is not
the file that the rename publishes, or if the folder is not synced after the rename.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from executor.dvcformat.lockfile import write_atomic
from executor.store.local import LocalStore

Event = tuple[str, int]  # ("fsync-file" | "fsync-dir" | "rename", inode)


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Event]]:
    events: list[Event] = []
    real_fsync: Callable[[int], None] = os.fsync
    real_replace = os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(st.st_mode) else "fsync-file", st.st_ino))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: object) -> None:
        events.append(("rename", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    yield events


def assert_durable(events: list[Event], published: Path) -> None:
    """The published file's data was synced before its rename, and its folder after it."""
    ino = published.stat().st_ino
    folder = published.parent.stat().st_ino
    assert ("rename", ino) in events, events
    renamed = events.index(("rename", ino))
    assert ("fsync-file", ino) in events[:renamed], f"data not synced before the rename: {events}"
    assert ("fsync-dir", folder) in events[renamed:], f"folder not synced after it: {events}"


def test_an_object_put_from_bytes_is_on_disk_before_it_has_its_name(
    tmp_path: Path, syscalls: list[Event]
) -> None:
    store = LocalStore(tmp_path / "cache")
    data = b"model weights\n"
    md5 = hashlib.md5(data).hexdigest()
    store.put_bytes(md5, data)
    assert_durable(syscalls, store.object_path(md5))


def test_an_object_copied_in_the_kernel_is_synced_too(
    tmp_path: Path, syscalls: list[Event]
) -> None:
    src = tmp_path / "out.bin"
    src.write_bytes(os.urandom(4096))
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    store = LocalStore(tmp_path / "cache")
    store.put_file(md5, src, seen=src.stat())  # the copy that trusts the md5 already judged
    assert_durable(syscalls, store.object_path(md5))


def test_an_object_copied_with_verification_is_synced(
    tmp_path: Path, syscalls: list[Event]
) -> None:
    src = tmp_path / "out.bin"
    src.write_bytes(b"a" * 3 * 1024 * 1024)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    store = LocalStore(tmp_path / "cache")
    store.put_file(md5, src)
    assert_durable(syscalls, store.object_path(md5))


def test_a_run_cache_entry_is_synced(tmp_path: Path, syscalls: list[Event]) -> None:
    store = LocalStore(tmp_path / "cache")
    key, value = "a" * 64, "b" * 64
    store.write_run(key, value, b"cmd: echo\n")
    assert_durable(syscalls, store.root / "runs" / key[:2] / key / value)


def test_dvc_lock_is_synced_before_it_replaces_the_old_one(
    tmp_path: Path, syscalls: list[Event]
) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages: {}\n")
    write_atomic(lock, "schema: '2.0'\nstages:\n  a:\n    cmd: echo\n")
    assert_durable(syscalls, lock)
    assert lock.read_text().endswith("cmd: echo\n")
