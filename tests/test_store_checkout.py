"""Checking outputs out where the workspace may already hold them, and the copy it makes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from executor.hashing import DirEntry, Hasher, manifest_bytes
from executor.store import base
from executor.store.base import copy_new
from executor.store.checkout import checkout, hashes_of
from executor.store.local import LocalStore
from executor.store.tracked import Tracked

FILES = {f"d{i % 3}/f{i}.txt": f"file {i}\n".encode() for i in range(30)}


def _output(root: Path) -> tuple[LocalStore, Tracked]:
    """A directory output `data` of FILES in the cache, and in the workspace as it should be."""
    cache = LocalStore(root / ".dvc" / "cache")
    entries = []
    for rel, data in FILES.items():
        md5 = hashlib.md5(data).hexdigest()
        cache.put_bytes(md5, data)
        (root / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / rel).write_bytes(data)
        entries.append(DirEntry(rel, md5, len(data), False))
    manifest = manifest_bytes(entries)
    oid = hashlib.md5(manifest).hexdigest() + ".dir"
    cache.put_bytes(oid, manifest)
    return cache, Tracked("data", oid)


def test_a_directory_already_in_place_is_one_tree_hash_and_no_file_read(tmp_path: Path) -> None:
    cache, out = _output(tmp_path)
    asked: list[list[Path]] = []
    with Hasher(tmp_path / "state.sqlite", root=tmp_path) as hasher:
        hashes = hashes_of(hasher)
        with hasher.settled():  # remembered, as a run or an earlier pull leaves them
            hasher.hash_many([tmp_path / "data"])
        read = hasher.files_read

        def counted(paths: list[Path]) -> list[str]:
            asked.append(paths)
            return hashes(paths)

        assert checkout(cache, tmp_path, out, counted) == 0
        assert asked == [[tmp_path / "data"]]  # the folder as a whole, not its 30 files
        assert hasher.files_read == read


def test_a_changed_directory_is_fixed_file_by_file(tmp_path: Path) -> None:
    cache, out = _output(tmp_path)
    (tmp_path / "data/d0/f0.txt").write_bytes(b"edited\n")
    (tmp_path / "data/d1/extra.txt").write_bytes(b"not in the manifest\n")
    (tmp_path / "data/d2/f2.txt").unlink()
    with Hasher(root=tmp_path) as hasher:
        assert checkout(cache, tmp_path, out, hashes_of(hasher)) == 2
    found = {
        p.relative_to(tmp_path / "data").as_posix(): p.read_bytes()
        for p in (tmp_path / "data").rglob("*")
        if p.is_file()
    }
    assert found == FILES


def test_files_dvcignore_hides_stay_when_the_directory_is_in_place(tmp_path: Path) -> None:
    cache, out = _output(tmp_path)
    (tmp_path / ".dvcignore").write_text("*.log\n")
    (tmp_path / "data/d0/run.log").write_bytes(b"kept, as DVC keeps it\n")
    with Hasher(root=tmp_path) as hasher:
        assert checkout(cache, tmp_path, out, hashes_of(hasher)) == 0
    assert (tmp_path / "data/d0/run.log").exists()


def test_a_folder_where_a_file_belongs_is_replaced_by_the_file(tmp_path: Path) -> None:
    cache, out = _output(tmp_path)
    (tmp_path / "data/d0/f0.txt").unlink()
    (tmp_path / "data/d0/f0.txt/inner").mkdir(parents=True)
    (tmp_path / "data/d0/f0.txt/inner/x").write_bytes(b"in the way\n")
    with Hasher(root=tmp_path) as hasher:
        assert checkout(cache, tmp_path, out, hashes_of(hasher)) == 1
    assert (tmp_path / "data/d0/f0.txt").read_bytes() == FILES["d0/f0.txt"]
    assert not list(tmp_path.rglob("*.executor-tmp"))


def test_copies_get_exactly_their_mode_whatever_the_umask(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 10_000)
    old = os.umask(0o077)
    try:
        copy_new(str(src), str(tmp_path / "plain"), 0o644)
        copy_new(str(src), str(tmp_path / "exec"), 0o744)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "exec").stat().st_mode) == 0o744
    assert (tmp_path / "plain").read_bytes() == src.read_bytes()


def _refuse(code: int) -> Callable[..., int]:
    def refuse(*args: object) -> int:
        raise OSError(code, os.strerror(code))

    return refuse


def test_a_copy_replaces_a_leftover_and_works_without_kernel_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(300_000))
    (tmp_path / "dest").write_bytes(b"a crashed writer's leftover, longer than nothing")
    monkeypatch.setattr(base, "COPY_CHUNK", 4096)  # several rounds of each loop
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV))  # across filesystems
    monkeypatch.setattr(os, "sendfile", _refuse(errno.EINVAL))  # between files, off Linux
    copy_new(str(src), str(tmp_path / "dest"), 0o644)
    assert (tmp_path / "dest").read_bytes() == src.read_bytes()


def test_a_kernel_copy_that_stops_short_is_finished_by_the_next_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(100_000))
    real = os.copy_file_range
    monkeypatch.setattr(base, "COPY_CHUNK", 4096)

    def stops_after_two(fd_in: int, fd_out: int, count: int, offset: int) -> int:
        return real(fd_in, fd_out, count, offset) if offset < 8192 else 0

    monkeypatch.setattr(os, "copy_file_range", stops_after_two)
    copy_new(str(src), str(tmp_path / "dest"), 0o644)
    assert (tmp_path / "dest").read_bytes() == src.read_bytes()


def test_a_copy_that_fails_midway_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(20_000))
    real = os.copy_file_range

    def full_after_one(fd_in: int, fd_out: int, count: int, offset: int) -> int:
        if offset:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd_in, fd_out, 4096, offset)

    monkeypatch.setattr(os, "copy_file_range", full_after_one)
    with pytest.raises(OSError, match="No space left"):
        copy_new(str(src), str(tmp_path / "dest"), 0o644)
