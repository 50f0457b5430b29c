"""Checking a directory output out where the workspace may already hold it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from executor.hashing import DirEntry, Hasher, manifest_bytes
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
