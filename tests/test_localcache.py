"""The worker's local cache: hardlinked read-only inputs, copies where links cannot be used,
LRU eviction under a size limit, and objects changed through a workspace never served again."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from executor.errors import CorruptObject, StoreError, WorkspaceError
from executor.hashing.objects import DirEntry, manifest_bytes
from executor.store.local import LocalStore
from worker.localcache import LocalCache, Placement


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def put(store: LocalStore, data: bytes) -> str:
    store.put_bytes(md5(data), data)
    return md5(data)


def test_inputs_are_hardlinked_read_only(store: LocalStore, tmp_path: Path) -> None:
    oid = put(store, b"dataset\n")
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    ws = tmp_path / "ws"
    with cache.materialised(ws, [Placement("data/in.csv", oid), Placement("copy.csv", oid)]):
        placed = ws / "data/in.csv"
        assert placed.read_bytes() == b"dataset\n"
        assert placed.stat().st_ino == cache.objects.object_path(oid).stat().st_ino
        assert stat.S_IMODE(placed.stat().st_mode) == 0o444
        assert (ws / "copy.csv").stat().st_ino == placed.stat().st_ino
    assert cache.objects.exists(oid)


def test_an_object_changed_through_a_workspace_is_dropped(
    store: LocalStore, tmp_path: Path
) -> None:
    oid = put(store, b"pristine\n")
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    ws = tmp_path / "ws"
    with cache.materialised(ws, [Placement("in.txt", oid)]):
        os.chmod(ws / "in.txt", 0o644)  # what a stage running as the worker's uid could do
        (ws / "in.txt").write_bytes(b"scribbled\n")
    assert not cache.objects.object_path(oid).exists()
    with cache.materialised(tmp_path / "ws2", [Placement("in.txt", oid)]):
        assert (tmp_path / "ws2/in.txt").read_bytes() == b"pristine\n"  # fetched again


def test_executable_inputs_are_copies(store: LocalStore, tmp_path: Path) -> None:
    oid = put(store, b"#!/bin/sh\n")
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    with cache.materialised(tmp_path / "ws", [Placement("run.sh", oid, isexec=True)]):
        placed = tmp_path / "ws/run.sh"
        assert os.access(placed, os.X_OK)
        assert placed.stat().st_ino != cache.objects.object_path(oid).stat().st_ino
    assert stat.S_IMODE(cache.objects.object_path(oid).stat().st_mode) == 0o444


def test_another_filesystem_gets_copies(store: LocalStore, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the temporary directory's")
    oid = put(store, b"elsewhere\n")
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    ws = shm / f"executor-test-{os.getpid()}-{tmp_path.name}"
    try:
        with cache.materialised(ws, [Placement("f", oid)]):
            assert (ws / "f").read_bytes() == b"elsewhere\n"
            assert stat.S_IMODE((ws / "f").stat().st_mode) == 0o444
    finally:
        for path in ws.glob("*"):
            path.unlink()
        ws.rmdir()


def test_least_recently_used_objects_are_evicted_first(store: LocalStore, tmp_path: Path) -> None:
    blobs = [bytes([65 + i]) * 100 for i in range(5)]
    oids = [put(store, b) for b in blobs]
    cache = LocalCache(tmp_path / "cache", store, max_bytes=300)
    for i in (0, 1, 2, 0, 3):  # 0 used again after 1 and 2
        with cache.materialised(tmp_path / f"ws{i}", [Placement("x", oids[i])]):
            pass
    assert cache.size <= 300
    assert [cache.objects.exists(o) for o in oids[:4]] == [True, False, True, True]


def test_objects_in_use_are_never_evicted(store: LocalStore, tmp_path: Path) -> None:
    oids = [put(store, bytes([i]) * 1000) for i in range(3)]
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10)
    with cache.materialised(tmp_path / "ws", [Placement(f"f{i}", o) for i, o in enumerate(oids)]):
        cache.evict()
        assert all(cache.objects.exists(o) for o in oids)
    assert cache.size <= 10 and not any(cache.objects.exists(o) for o in oids)


def test_a_restarted_cache_knows_its_objects_and_their_order(
    store: LocalStore, tmp_path: Path
) -> None:
    oids = [put(store, bytes([i]) * 100) for i in range(3)]
    first = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    for i, oid in enumerate(oids):
        with first.materialised(tmp_path / f"ws{i}", [Placement("x", oid)]):
            pass
        os.utime(first.objects.object_path(oid), (1000 + i, 1000 + i))
    again = LocalCache(tmp_path / "cache", store, max_bytes=150)
    assert again.size == 300
    again.evict()
    assert [again.objects.exists(o) for o in oids] == [False, False, True]


def test_directories_expand_and_cannot_escape_the_workspace(
    store: LocalStore, tmp_path: Path
) -> None:
    a = put(store, b"a\n")
    good = manifest_bytes([DirEntry("sub/a.txt", a, 2, False)])
    store.put_bytes(md5(good) + ".dir", good)
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    placements = cache.expand("data", md5(good) + ".dir")
    assert placements == [Placement("data/sub/a.txt", a)]
    evil = b'[{"md5": "%s", "relpath": "../../etc/x"}]' % a.encode()
    store.put_bytes(md5(evil) + ".dir", evil)
    with pytest.raises(WorkspaceError, match="not a safe path"):
        cache.expand("data", md5(evil) + ".dir")
    escaping = cache.materialised(tmp_path / "ws", [Placement("data/../../x", a)])
    with pytest.raises(WorkspaceError, match="escapes the workspace"), escaping:
        pass
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../../home/secret", "ab/../../x", "A" * 32, "0" * 31, ""])
def test_an_object_name_that_is_no_md5_never_becomes_a_path(
    store: LocalStore, tmp_path: Path, name: str
) -> None:
    """A manifest only has to hash to its own name: anyone who can upload one chooses the
    names of its entries, which must never lead out of the cache."""
    secret = tmp_path / "home" / "secret"
    secret.parent.mkdir()
    secret.write_text("keys\n")
    evil = b'[{"md5": "%s", "relpath": "a.txt"}]' % name.encode()
    store.put_bytes(md5(evil) + ".dir", evil)
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    with pytest.raises(WorkspaceError, match="is not an md5"):
        cache.expand("data", md5(evil) + ".dir")
    with pytest.raises(StoreError, match="not an md5"):
        cache.objects.object_path(name)
    assert secret.read_text() == "keys\n"


def test_a_corrupt_object_in_the_store_is_not_cached(store: LocalStore, tmp_path: Path) -> None:
    oid = md5(b"real\n")
    path = store.object_path(oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"fake\n")
    cache = LocalCache(tmp_path / "cache", store, max_bytes=10**6)
    with pytest.raises(CorruptObject), cache.materialised(tmp_path / "ws", [Placement("x", oid)]):
        pass
    assert not cache.objects.exists(oid) and not (tmp_path / "ws/x").exists()


def test_a_dead_jobs_linked_objects_are_hashed_again_before_the_cache_is_trusted(
    store: LocalStore, tmp_path: Path
) -> None:
    """A job killed while its stage had (somehow) rewritten a linked input: the folder it
    leaves names the objects it linked, and removing it drops those that changed."""
    import fcntl
    import json

    from worker.jobdirs import LOCK_NAME, PLACED_NAME, remove_stale_workspaces

    home = tmp_path / "home"
    good, bad = put(store, b"good\n"), put(store, b"bad\n")
    cache = LocalCache(home / "cache", store, max_bytes=10**6)
    cache.fetch([good, bad])
    victim = cache.objects.object_path(bad)
    os.chmod(victim, 0o644)
    victim.write_bytes(b"changed\n")
    os.chmod(victim, 0o444)  # as it was, but for its bytes
    jobdir = home / "jobs" / "job-1"
    jobdir.mkdir(parents=True)
    (jobdir / LOCK_NAME).touch()
    (jobdir / PLACED_NAME).write_text(json.dumps([good, bad, "../../etc/passwd"]))
    held = os.open(jobdir / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    remove_stale_workspaces(home)  # its job holds it: left alone, nothing verified
    assert jobdir.exists() and victim.exists()
    os.close(held)
    remove_stale_workspaces(home)
    assert not jobdir.exists()
    assert not victim.exists()  # fetched again, verified, when next needed
    assert cache.objects.object_path(good).read_bytes() == b"good\n"
