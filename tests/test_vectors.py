"""The DVC vectors (tests/data/dvc-vectors) reproduced exactly: keys, values, entry and lock bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from executor import yamlio
from executor.dvcformat.entry import (
    build_entry,
    canonical_json,
    key_document,
    lock_item,
    run_key,
    run_value,
)
from executor.dvcformat.lockfile import LockWriter, read_lock
from executor.hashing.hasher import Hasher
from executor.pipeline import load_pipeline, params_values
from executor.runcache import RunCache
from executor.store.local import LocalStore

SPEC = Path(__file__).resolve().parent / "data" / "dvc-vectors"
VECTORS: dict[str, Any] = json.loads((SPEC / "vectors.json").read_text())


@pytest.fixture()
def fixture_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "fixture"
    shutil.copytree(SPEC / "fixture", dest)
    for path in dest.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return dest


@pytest.mark.parametrize("name", sorted(VECTORS["stages"]))
def test_key_value_and_entry_bytes_match_dvc(name: str) -> None:
    stage = VECTORS["stages"][name]
    entry = stage["lock_entry"]
    assert canonical_json(key_document(entry)) == stage["key_json"]
    assert run_key(entry) == stage["key_sha256"]
    assert run_value(entry) == stage["value_sha256"]
    assert yamlio.dump(entry) == stage["entry_yaml"]


def _entries(section: Any) -> list[tuple[str, str]]:
    if isinstance(section, dict) and all(isinstance(v, str) for v in section.values()):
        return list(section.items())
    found = []
    for group in section.values() if isinstance(section, dict) else section:
        for item in group if isinstance(group, list) else [group]:
            found.append((item["entry_path"], item["entry_yaml"]))
    return found


@pytest.mark.parametrize("section", ["other_run_entries_in_fixture", "scratch_entries"])
def test_entries_dvc_wrote_recompute_to_their_path(section: str) -> None:
    entries = _entries(VECTORS[section])
    assert entries
    for path, text in entries:
        entry = yamlio.load_text(text, path)
        *_, key, value = path.split("/")
        assert (run_key(entry), run_value(entry)) == (key, value), path
        assert yamlio.dump(entry) == text


def test_fixture_pipeline_rebuilds_lock_entries_and_dvc_lock(fixture_copy: Path) -> None:
    root = fixture_copy
    pipeline = load_pipeline(root)
    hasher = Hasher(None, root=root)
    (root / "dvc.lock").unlink()
    writer = LockWriter(root)
    store = LocalStore(root / ".dvc" / "cache")
    for stage in pipeline.stages.values():
        deps = [lock_item(d, hasher.hash_path(root / stage.repo_path(d))) for d in stage.deps]
        outs = [
            lock_item(o.path, hasher.hash_path(root / stage.repo_path(o.path))) for o in stage.outs
        ]
        entry = build_entry(stage.lock_cmd, deps, params_values(root, stage), outs)
        expected = VECTORS["stages"][stage.name]
        assert entry == expected["lock_entry"]
        writer.write(stage.lockfile, stage.name, entry)
        hit = RunCache(store).lookup(run_key(entry), "sha256:any")
        assert hit is not None and hit.value == expected["value_sha256"]
    assert (root / "dvc.lock").read_bytes() == (SPEC / "fixture" / "dvc.lock").read_bytes()
    assert read_lock(root, "dvc.lock")["upper"] == VECTORS["stages"]["upper"]["lock_entry"]


def test_run_entry_written_by_executor_is_byte_identical(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stage = VECTORS["stages"]["listing"]
    key, value = RunCache(store).save(stage["lock_entry"], image="img", image_digest="sha256:x")
    entry_path = tmp_path / stage["entry_path"].removeprefix(".dvc/cache/")
    assert (key, value) == (stage["key_sha256"], stage["value_sha256"])
    assert entry_path.read_text() == stage["entry_yaml"]
    # Only DVC's entry lives under runs/: executor's record sits outside it.
    assert [p.name for p in entry_path.parent.iterdir()] == [value]


def test_lookup_needs_matching_image_and_every_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cache = RunCache(store, trust_dvc_runs=False)
    entry = VECTORS["stages"]["upper"]["lock_entry"]
    key, _ = cache.save(entry, image="img", image_digest="sha256:one")
    assert cache.lookup(key, "sha256:one") is None  # out/upper.txt's object is not stored
    store.put_bytes("0084467710d2fc9d8a306e14efbe6d0f", b"HELLO\n")
    assert cache.lookup(key, "sha256:one") is not None
    assert cache.lookup(key, "sha256:two") is None


def test_two_images_with_the_same_outputs_both_hit(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cache = RunCache(store, trust_dvc_runs=False)
    entry = VECTORS["stages"]["upper"]["lock_entry"]
    store.put_bytes("0084467710d2fc9d8a306e14efbe6d0f", b"HELLO\n")
    key, _ = cache.save(entry, image="a:1", image_digest="sha256:a")
    cache.save(entry, image="b:1", image_digest="sha256:b")
    assert cache.lookup(key, "sha256:a") is not None
    assert cache.lookup(key, "sha256:b") is not None
    assert cache.lookup(key, "sha256:c") is None
