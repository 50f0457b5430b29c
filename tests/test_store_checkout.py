"""Checking outputs out where the workspace may already hold them, and the copy it makes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from executor.dvcformat.config import parse_types
from executor.errors import ConfigError, UnsavedChanges, WorkspaceError
from executor.hashing.hasher import Hasher
from executor.hashing.objects import DirEntry, manifest_bytes
from executor.store import base
from executor.store import links as links_module
from executor.store.base import copy_new
from executor.store.checkout import checkout, hashes_of
from executor.store.links import Links, unprotect
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
        assert checkout(cache, tmp_path, out, hashes_of(hasher), force=True) == 2
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
        assert checkout(cache, tmp_path, out, hashes_of(hasher), force=True) == 1
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


def _obj(tmp_path: Path, data: bytes) -> str:
    cache = LocalStore(tmp_path / "cache")
    md5 = hashlib.md5(data).hexdigest()
    cache.put_bytes(md5, data)
    return cache.object_str(md5)


def test_link_types_fall_back_in_order_and_a_failed_one_is_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _obj(tmp_path, b"content\n")
    links = Links(("reflink", "hardlink", "copy"))
    tried: list[str] = []
    real_link = os.link

    def cross_device(a: str, b: str) -> None:
        tried.append(b)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(links_module, "MAKERS", {**links_module.MAKERS, "reflink": _refused})
    monkeypatch.setattr(os, "link", cross_device)
    for name in ("a", "b"):
        links.place(src, str(tmp_path / name), 0o644, isexec=False)
        assert (tmp_path / name).read_bytes() == b"content\n"
        assert (tmp_path / name).stat().st_nlink == 1  # a copy
    assert len(tried) == 1  # hardlink failed once, then was skipped
    monkeypatch.setattr(os, "link", real_link)
    hard = Links(("hardlink", "copy"))
    hard.place(src, str(tmp_path / "c"), 0o644, isexec=True)
    assert (tmp_path / "c").stat().st_ino == os.stat(src).st_ino
    assert os.stat(src).st_mode & stat.S_IEXEC  # DVC's set_exec, on the shared object
    assert hard.is_linked(str(tmp_path / "c"), src) and not hard.is_linked(str(tmp_path / "a"), src)


def _refused(src: str, tmp: str, mode: int) -> None:
    raise OSError(errno.EOPNOTSUPP, "Operation not supported")


def test_symlinks_are_left_out_when_the_cache_is_outside_and_nothing_left_is_an_error(
    tmp_path: Path,
) -> None:
    src = _obj(tmp_path, b"x\n")
    with pytest.raises(WorkspaceError, match=r"none of the cache link types symlink works for"):
        Links(("symlink",), symlinks=False).place(src, str(tmp_path / "a"), 0o644, False)
    assert not list(tmp_path.glob("a*"))
    Links(("symlink", "copy"), symlinks=False).place(src, str(tmp_path / "b"), 0o644, False)
    assert not (tmp_path / "b").is_symlink()


def test_cache_type_must_name_known_link_types(tmp_path: Path) -> None:
    assert parse_types(" hardlink, symlink ,copy", "c") == ("hardlink", "symlink", "copy")
    with pytest.raises(ConfigError, match=r"cache.type 'hardlinks' is not a list of reflink"):
        parse_types("hardlinks", "c")


def test_unprotect_turns_links_into_writable_copies_and_leaves_the_object(tmp_path: Path) -> None:
    src = _obj(tmp_path, b"keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    os.link(src, out / "hard")
    os.symlink(src, out / "soft")
    (out / "own").write_bytes(b"mine\n")
    unprotect(out, (os.path.realpath(tmp_path),))
    for name in ("hard", "soft"):
        path = out / name
        assert not path.is_symlink() and path.stat().st_nlink == 1
        assert path.stat().st_mode & stat.S_IWUSR
        path.write_bytes(b"changed\n")
    assert Path(src).read_bytes() == b"keep me\n"


def test_changes_in_no_cache_are_refused_without_force_and_nothing_is_touched(
    tmp_path: Path,
) -> None:
    """As dvc checkout: an edited file, a new file and a file where a folder of the output
    belongs would be lost; the checkout refuses and changes nothing. Content some object
    holds (an older version, say) is replaced silently, as DVC does."""
    cache, out = _output(tmp_path)
    (tmp_path / "data/d0/f0.txt").write_bytes(b"my edit\n")
    (tmp_path / "data/d1/new.txt").write_bytes(b"my new file\n")
    (tmp_path / "data/d2/f2.txt").write_bytes(FILES["d1/f1.txt"])  # content the cache has
    (tmp_path / ".dvcignore").write_text("*.log\n")
    (tmp_path / "data/d0/run.log").write_bytes(b"ignored, kept\n")
    before = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    with Hasher(root=tmp_path) as hasher, pytest.raises(UnsavedChanges) as refused:
        checkout(cache, tmp_path, out, hashes_of(hasher))
    assert refused.value.paths == ["data/d0/f0.txt", "data/d1/new.txt"]
    assert "use --force to discard them" in str(refused.value)
    after = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    assert after == before
    with Hasher(root=tmp_path) as hasher:
        assert checkout(cache, tmp_path, out, hashes_of(hasher), force=True) == 2
    assert (tmp_path / "data/d0/run.log").read_bytes() == b"ignored, kept\n"
    assert not (tmp_path / "data/d1/new.txt").exists()
    assert (tmp_path / "data/d2/f2.txt").read_bytes() == FILES["d2/f2.txt"]


def test_a_file_output_replaced_by_a_folder_of_unsaved_files_is_refused(tmp_path: Path) -> None:
    cache = LocalStore(tmp_path / ".dvc" / "cache")
    cache.put_bytes(hashlib.md5(b"v1\n").hexdigest(), b"v1\n")
    out = Tracked("model.bin", hashlib.md5(b"v1\n").hexdigest())
    (tmp_path / "model.bin").mkdir()
    (tmp_path / "model.bin/notes.txt").write_bytes(b"mine\n")
    with Hasher(root=tmp_path) as hasher, pytest.raises(UnsavedChanges, match=r"notes\.txt"):
        checkout(cache, tmp_path, out, hashes_of(hasher))
    assert (tmp_path / "model.bin/notes.txt").read_bytes() == b"mine\n"


def test_a_leftover_temporary_file_does_not_stop_a_link(tmp_path: Path) -> None:
    src = _obj(tmp_path, b"x\n")
    for kind in ("hardlink", "symlink", "copy"):
        dest = tmp_path / kind
        Path(f"{dest}.executor-tmp").write_bytes(b"left by a killed run\n")
        Links((kind,)).place(src, str(dest), 0o644, isexec=False)
        assert dest.read_bytes() == b"x\n" and not Path(f"{dest}.executor-tmp").exists()


def test_a_kernel_copy_refused_before_any_byte_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(50_000))
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EPERM))  # seccomp says no
    copy_new(str(src), str(tmp_path / "dest"), 0o644)
    assert (tmp_path / "dest").read_bytes() == src.read_bytes()


def test_unprotect_leaves_links_that_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "host.txt"
    outside.write_bytes(b"host\n")
    repo = tmp_path / "repo"
    (repo / "out").mkdir(parents=True)
    os.symlink(outside, repo / "out/x")
    unprotect(repo / "out", (os.path.realpath(repo),))
    assert (repo / "out/x").is_symlink()


def test_a_broken_symlink_in_a_directory_output_is_removed_not_a_crash(tmp_path: Path) -> None:
    cache, out = _output(tmp_path)
    (tmp_path / "data/d0/f0.txt").unlink()
    os.symlink(tmp_path / "nowhere", tmp_path / "data/d1/dangling")
    with Hasher(root=tmp_path) as hasher:
        assert checkout(cache, tmp_path, out, hashes_of(hasher)) == 1
    assert not os.path.lexists(tmp_path / "data/d1/dangling")
    assert (tmp_path / "data/d0/f0.txt").read_bytes() == FILES["d0/f0.txt"]
