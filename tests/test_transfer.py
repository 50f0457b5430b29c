"""push and pull between a repository and a store (S3 over HTTP, or a folder); the S3 cases
that move the most kinds of request run on moto and on s3s-fs."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from executor import yamlio
from executor.cli.pushpull import pull as pull_command
from executor.cli.pushpull import push as push_command
from executor.errors import TransferIncomplete, UnsavedChanges, UserError
from executor.hashing.hasher import Hasher
from executor.hashing.objects import DirEntry, manifest_bytes
from executor.store.base import ObjectStore, object_key
from executor.store.hints import DirHints
from executor.store.local import LocalStore
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from executor.store.tracked import tracked_outputs
from executor.store.transfer import pull, push
from tests.fixtures.s3_server import Bucket
from tests.fixtures.s3s_server import on_every_s3

Tree = Mapping[str, "bytes | Tree"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _files(tree: Tree, prefix: str = "") -> dict[str, bytes]:
    flat: dict[str, bytes] = {}
    for name, value in tree.items():
        if isinstance(value, bytes):
            flat[prefix + name] = value
        else:
            flat.update(_files(value, f"{prefix}{name}/"))
    return flat


def build_repo(
    root: Path, outs: Mapping[str, bytes | Tree], exec_outs: tuple[str, ...] = ()
) -> None:
    """A repository as `dvc repro` leaves it: outputs in the workspace and in .dvc/cache, one
    stage per output in dvc.yaml and dvc.lock (without running DVC)."""
    cache = LocalStore(root / ".dvc" / "cache")
    (root / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    stages: dict[str, Any] = {}
    lock: dict[str, Any] = {}
    for i, (path, content) in enumerate(outs.items()):
        if isinstance(content, bytes):
            files = {path: content}
            oid = md5(content)
            item: dict[str, Any] = {"path": path, "hash": "md5", "md5": oid, "size": len(content)}
            if path in exec_outs:
                item["isexec"] = True
        else:
            inner = _files(content)
            files = {f"{path}/{rel}": data for rel, data in inner.items()}
            entries = [DirEntry(rel, md5(d), len(d), False) for rel, d in inner.items()]
            manifest = manifest_bytes(entries)
            oid = md5(manifest) + ".dir"
            cache.put_bytes(oid, manifest)
            size = sum(len(d) for d in inner.values())
            item = {"path": path, "hash": "md5", "md5": oid, "size": size, "nfiles": len(inner)}
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            cache.put_bytes(md5(data), data)
        if path in exec_outs:
            os.chmod(root / path, 0o755)
        stages[f"s{i}"] = {"cmd": f"make {path}", "outs": [path]}
        lock[f"s{i}"] = {"cmd": f"make {path}", "outs": [item]}
    (root / "dvc.yaml").write_text(yamlio.dump({"stages": stages}))
    (root / "dvc.lock").write_text(yamlio.dump({"schema": "2.0", "stages": lock}))


def clone(src: Path, dest: Path) -> Path:
    """A fresh checkout: the dvc files, no outputs, an empty cache."""
    dest.mkdir()
    (dest / ".dvc").mkdir()
    for name in ("dvc.yaml", "dvc.lock"):
        shutil.copy(src / name, dest / name)
    return dest


def counting(store: S3Store) -> Counter[str]:
    calls: Counter[str] = Counter()
    store.client.meta.events.register(
        "before-call.s3", lambda model, **_: calls.update([model.name])
    )
    return calls


OUTS: dict[str, bytes | Tree] = {
    "out/model.bin": os.urandom(3000),
    "out/tool.sh": b"#!/bin/sh\necho hi\n",
    "out/listing": {"a.txt": b"a\n", "sub": {"b.txt": b"b\n", "deep": {"c.txt": b"c\n"}}},
}


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    build_repo(root, OUTS, exec_outs=("out/tool.sh",))
    return root


@pytest.fixture()
def s3(s3_bucket: Bucket) -> S3Store:
    return S3Store(make_client(s3_bucket.endpoint), s3_bucket.name, "team/dvc", workers=8)


def cache_of(root: Path) -> LocalStore:
    return LocalStore(root / ".dvc" / "cache")


@on_every_s3()
def test_push_then_pull_into_a_fresh_clone_restores_every_output(
    repo: Path, s3: S3Store, tmp_path: Path
) -> None:
    report = push(cache_of(repo), s3, tracked_outputs(repo), jobs=4)
    assert report.moved == 6 and not report.failed  # 2 files, 1 manifest, 3 files in it
    fresh = clone(repo, tmp_path / "fresh")
    report = pull(cache_of(fresh), s3, fresh, tracked_outputs(fresh), jobs=4)
    assert report.moved == 6 and report.checked_out == 5
    for rel in ("out/model.bin", "out/tool.sh", "out/listing/sub/deep/c.txt"):
        assert (fresh / rel).read_bytes() == (repo / rel).read_bytes()
    assert os.access(fresh / "out/tool.sh", os.X_OK)
    assert not os.access(fresh / "out/model.bin", os.X_OK)
    assert (
        stat.S_IMODE(cache_of(fresh).object_path(md5(OUTS["out/model.bin"])).stat().st_mode)
        == 0o444
    )  # type: ignore[arg-type]


class WatchedStore:
    """A folder store that notes, before each download, which of `watched` are in place."""

    def __init__(self, store: LocalStore, watched: list[Path]) -> None:
        self.store, self.watched, self.present_before = store, watched, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def get_file(self, md5: str, dest: Path, *, mode: int = 0o644) -> None:
        self.present_before.append(sum(p.exists() for p in self.watched))
        self.store.get_file(md5, dest, mode=mode)


def test_pull_writes_a_fresh_output_as_its_objects_arrive(repo: Path, tmp_path: Path) -> None:
    remote = LocalStore(tmp_path / "remote")
    push(cache_of(repo), remote, tracked_outputs(repo))
    fresh = clone(repo, tmp_path / "fresh")
    listing = [fresh / "out/listing" / rel for rel in ("a.txt", "sub/b.txt", "sub/deep/c.txt")]
    store = WatchedStore(remote, listing)
    report = pull(cache_of(fresh), store, fresh, tracked_outputs(fresh), jobs=1)  # type: ignore[arg-type]
    assert report.checked_out == 5 and not report.failed
    # One download at a time: before the listing's last file came, the others were in place.
    assert 2 in store.present_before  # (all zeros if it waited for every download)
    assert [p.read_bytes() for p in listing] == [b"a\n", b"b\n", b"c\n"]


@on_every_s3()
def test_second_push_moves_nothing_and_trusts_a_present_dir_object(repo: Path, s3: S3Store) -> None:
    push(cache_of(repo), s3, tracked_outputs(repo))
    calls = counting(s3)
    report = push(cache_of(repo), s3, tracked_outputs(repo))
    assert report.moved == 0 and report.present == 3
    assert calls == Counter({"ListObjectsV2": 1})  # two files and the .dir in one page


def test_push_uploads_only_what_changed(repo: Path, s3: S3Store) -> None:
    push(cache_of(repo), s3, tracked_outputs(repo))
    build_repo(repo, {**OUTS, "out/listing": {"a.txt": b"a\n", "new.txt": b"new\n"}})
    calls = counting(s3)
    report = push(cache_of(repo), s3, tracked_outputs(repo))
    assert report.moved == 2  # new.txt and the new manifest; a.txt is already there
    assert calls["PutObject"] == 2


def test_a_few_changed_files_in_a_big_directory_cost_a_few_requests(
    tmp_path: Path, s3: S3Store
) -> None:
    root = tmp_path / "big"
    files: dict[str, bytes | Tree] = {f"f{i:03d}": b"%d\n" % i for i in range(300)}
    build_repo(root, {"data": files})
    hints = DirHints(tmp_path / "hints.json")
    push(cache_of(root), s3, tracked_outputs(root), hints=hints)
    build_repo(root, {"data": {**files, "f007": b"new\n", "f123": b"newer\n"}})
    calls = counting(s3)
    report = push(cache_of(root), s3, tracked_outputs(root), hints=DirHints(hints.path))
    assert report.moved == 3  # two files and the new manifest
    # HEADs: the new .dir, the previous one (still there, so its 298 shared files are), and
    # the two changed files; no listing of the directory's 300 files
    assert calls == Counter({"HeadObject": 4, "PutObject": 3})


@on_every_s3()
def test_pull_refuses_a_corrupt_object_and_does_not_use_it(
    repo: Path, s3: S3Store, s3_bucket: Bucket, tmp_path: Path
) -> None:
    push(cache_of(repo), s3, tracked_outputs(repo))
    oid = md5(b"b\n")
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key=f"team/dvc/{object_key(oid)}", Body=b"tampered\n"
    )
    fresh = clone(repo, tmp_path / "fresh")
    with pytest.raises(TransferIncomplete, match=f"object {oid} .* is corrupt") as caught:
        pull(cache_of(fresh), s3, fresh, tracked_outputs(fresh))
    assert list(caught.value.failed) == [oid]
    assert not cache_of(fresh).exists(oid)
    assert not (fresh / "out/listing").exists()  # an output is checked out whole or not at all
    assert (fresh / "out/model.bin").read_bytes() == OUTS["out/model.bin"]


@on_every_s3()
def test_push_with_an_object_missing_locally_keeps_its_dir_object_back(
    repo: Path, s3: S3Store, s3_bucket: Bucket
) -> None:
    missing = cache_of(repo).object_path(md5(b"c\n"))
    missing.unlink()
    with pytest.raises(TransferIncomplete, match="missing from the local cache"):
        push(cache_of(repo), s3, tracked_outputs(repo))
    keys = s3_bucket.keys()
    assert "team/dvc/" + object_key(md5(b"a\n")) in keys
    assert not any(k.endswith(".dir") for k in keys)  # the manifest never goes before its files


def test_targets_choose_stages_files_and_paths(repo: Path) -> None:
    assert [t.path for t in tracked_outputs(repo, ["s0"])] == ["out/model.bin"]
    assert [t.path for t in tracked_outputs(repo, ["dvc.yaml:s1"])] == ["out/tool.sh"]
    assert [t.path for t in tracked_outputs(repo, ["out/listing/sub"])] == ["out/listing"]
    assert len(tracked_outputs(repo, ["dvc.lock"])) == 3
    assert [t.path for t in tracked_outputs(repo, ["model.bin"], cwd=repo / "out")] == [
        "out/model.bin"
    ]
    with pytest.raises(UserError, match="'nothing' names no stage"):
        tracked_outputs(repo, ["nothing"])


@pytest.mark.parametrize("kind", ["moto", "s3s-fs", "folder"])
def test_run_cache_entries_and_records_travel_with_their_times(
    kind: str, repo: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: ObjectStore = LocalStore(tmp_path / "remote")
    if kind != "folder":
        bucket = request.getfixturevalue("s3_bucket" if kind == "moto" else "s3s_bucket")
        store = S3Store(make_client(bucket.endpoint), bucket.name, "team/dvc")
    cache = cache_of(repo)
    cache.write_run("ab" * 32, "11" * 32, b"cmd: one\n")
    cache.write_run("ab" * 32, "22" * 32, b"cmd: two\n")
    cache.write_record("ab" * 32, "22" * 32, b'{"image_digest": "sha256:x"}')
    assert push(cache, store, [], run_cache=True).runs == 2
    assert push(cache, store, [], run_cache=True).runs == 0  # entries are named by content
    fresh = clone(repo, tmp_path / "fresh")
    assert pull(cache_of(fresh), store, fresh, [], run_cache=True).runs == 2
    got = cache_of(fresh)
    assert got.read_run("ab" * 32, "22" * 32) == b"cmd: two\n"
    assert got.read_record("ab" * 32, "22" * 32) == b'{"image_digest": "sha256:x"}'
    assert [r.value for r in got.list_runs("ab" * 32)] == [
        r.value for r in store.list_runs("ab" * 32)
    ]


def test_pull_keeps_matching_files_and_replaces_changed_ones(repo: Path, tmp_path: Path) -> None:
    remote = LocalStore(tmp_path / "remote")
    push(cache_of(repo), remote, tracked_outputs(repo))
    (repo / "out/listing/a.txt").unlink()
    (repo / "out/listing/a.txt").write_bytes(b"edited\n")
    (repo / "out/listing/extra.txt").write_bytes(b"not in the manifest\n")
    report = pull(cache_of(repo), remote, repo, tracked_outputs(repo), force=True)
    assert report.checked_out == 1
    assert (repo / "out/listing/a.txt").read_bytes() == b"a\n"
    assert not (repo / "out/listing/extra.txt").exists()


def test_cli_pull_keeps_unsaved_changes_unless_forced(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As dvc pull: an edit that is in no cache is never thrown away silently; the other
    outputs are still checked out, and --force discards the edit."""
    store = str(tmp_path / "remote")
    push(cache_of(repo), LocalStore(Path(store)), tracked_outputs(repo))
    (repo / "out/tool.sh").unlink()
    (repo / "out/model.bin").chmod(0o644)
    (repo / "out/model.bin").write_bytes(b"retrained by hand, not saved\n")
    monkeypatch.chdir(repo)
    refused = CliRunner().invoke(pull_command, ["--store", store])
    assert refused.exit_code == 2, refused.output
    assert "cannot check out 'out/model.bin'" in refused.output
    assert "out/model.bin" in refused.output and "--force" in refused.output
    assert (repo / "out/model.bin").read_bytes() == b"retrained by hand, not saved\n"
    assert (repo / "out/tool.sh").read_bytes() == b"#!/bin/sh\necho hi\n"  # still restored
    forced = CliRunner().invoke(pull_command, ["--store", store, "--force"])
    assert forced.exit_code == 0, forced.output
    assert (repo / "out/model.bin").read_bytes() == OUTS["out/model.bin"]


@on_every_s3()
def test_cli_push_and_pull_use_executor_store(
    repo: Path, tmp_path: Path, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "EXECUTOR_STORE": s3_bucket.url("cli"),
        "EXECUTOR_S3_ENDPOINT_URL": s3_bucket.endpoint,
    }
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(push_command, ["-j", "4"], env=env)
    assert result.exit_code == 0, result.output
    assert "6 objects pushed" in result.output
    assert (
        CliRunner().invoke(push_command, [], env=env).output.strip() == "Everything is up to date."
    )
    fresh = clone(repo, tmp_path / "fresh")
    monkeypatch.chdir(fresh)
    result = CliRunner().invoke(pull_command, ["s1"], env=env)
    assert result.exit_code == 0, result.output
    assert (fresh / "out/tool.sh").is_file() and not (fresh / "out/model.bin").exists()


def test_cli_without_a_store_says_how_to_name_one(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.delenv("EXECUTOR_STORE", raising=False)
    result = CliRunner().invoke(push_command, [])
    assert result.exit_code == 2
    assert (
        "pass --store URL or -r REMOTE, set EXECUTOR_STORE, or give the repository" in result.output
    )


@on_every_s3(s3s_lacks="server-side encryption and object ACLs (GetObjectAcl: 501)")
def test_a_dvc_remote_s_encryption_and_acl_apply_to_every_write(
    tmp_path: Path, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sse and acl from the DVC remote reach single PUTs, multipart uploads and run-cache
    entries alike (the server reports them back)."""
    root = tmp_path / "repo"
    build_repo(root, {"out/big.bin": os.urandom(9 * 2**20), "out/small.txt": b"small\n"})
    LocalStore(root / ".dvc/cache").write_run("ab" * 32, "cd" * 32, b"outs: []\n")
    (root / ".dvc/config").write_text(
        "[core]\n    remote = vault\n"
        f"['remote \"vault\"']\n    url = {s3_bucket.url('enc')}\n"
        f"    endpointurl = {s3_bucket.endpoint}\n    sse = AES256\n"
        "    acl = bucket-owner-full-control\n"
    )
    monkeypatch.delenv("EXECUTOR_STORE", raising=False)
    monkeypatch.delenv("EXECUTOR_S3_ENDPOINT_URL", raising=False)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(push_command, ["--run-cache"])
    assert result.exit_code == 0, result.output
    keys = s3_bucket.keys("enc/")
    assert len([k for k in keys if "/files/md5/" in k]) == 2
    assert any("/runs/" in k for k in keys)
    for key in keys:
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
    big = object_key(hashlib.md5((root / "out/big.bin").read_bytes()).hexdigest())
    grants = s3_bucket.client.get_object_acl(Bucket=s3_bucket.name, Key=f"enc/{big}")["Grants"]
    assert grants  # the canned ACL was accepted with the multipart upload


def _listing_store(repo: Path, tmp_path: Path) -> LocalStore:
    remote = LocalStore(tmp_path / "remote")
    push(cache_of(repo), remote, tracked_outputs(repo))
    return remote


def test_a_target_inside_a_directory_output_checks_out_only_that_part(
    repo: Path, tmp_path: Path
) -> None:
    """As `dvc pull dir/sub/file`: the rest of the folder, edits and new files included,
    is not touched, even with --force."""
    remote = _listing_store(repo, tmp_path)
    listing = repo / "out/listing"
    (listing / "new.txt").write_bytes(b"mine\n")
    (listing / "a.txt").write_bytes(b"edited\n")
    (listing / "sub/b.txt").write_bytes(b"edited too\n")
    targets = tracked_outputs(repo, ["out/listing/sub/b.txt"], repo)
    assert [(t.path, t.only) for t in targets] == [("out/listing", "sub/b.txt")]
    report = pull(cache_of(repo), remote, repo, targets, force=True)
    assert report.checked_out == 1
    assert (listing / "sub/b.txt").read_bytes() == b"b\n"
    assert (listing / "new.txt").read_bytes() == b"mine\n"
    assert (listing / "a.txt").read_bytes() == b"edited\n"
    (listing / "sub/deep/c.txt").unlink()  # a missing file is restored despite new.txt
    report = pull(cache_of(repo), remote, repo, tracked_outputs(repo, ["out/listing/sub"], repo))
    assert (listing / "sub/deep/c.txt").read_bytes() == b"c\n"
    assert (listing / "new.txt").exists()


def test_symlinks_holding_unsaved_content_are_refused_and_temp_files_are_not(
    repo: Path, tmp_path: Path
) -> None:
    remote = _listing_store(repo, tmp_path)
    (tmp_path / "mine.txt").write_bytes(b"only here\n")
    os.symlink(tmp_path / "mine.txt", repo / "out/listing/link.txt")
    with pytest.raises(UnsavedChanges, match=r"out/listing/link\.txt"):
        pull(cache_of(repo), remote, repo, tracked_outputs(repo))
    assert (repo / "out/listing/link.txt").is_symlink()
    (repo / "out/listing/link.txt").unlink()
    (repo / "out/listing/a.txt").unlink()
    (repo / "out/listing/a.txt.executor-tmp").write_bytes(b"half written by a killed pull")
    pull(cache_of(repo), remote, repo, tracked_outputs(repo))
    assert (repo / "out/listing/a.txt").read_bytes() == b"a\n"
    assert not (repo / "out/listing/a.txt.executor-tmp").exists()


def test_cache_false_outputs_are_never_checked_out(repo: Path, tmp_path: Path) -> None:
    remote = _listing_store(repo, tmp_path)
    lock = yamlio.load_file(repo / "dvc.lock", "dvc.lock")
    stages = yamlio.load_file(repo / "dvc.yaml", "dvc.yaml")
    out = lock["stages"]["s0"]["outs"][0]["path"]
    stages["stages"]["s0"]["outs"] = [{out: {"cache": False}}]
    (repo / "dvc.yaml").write_text(yamlio.dump(stages))
    (repo / out).chmod(0o644)
    (repo / out).write_bytes(b"the stage's own business\n")
    pull(cache_of(repo), remote, repo, tracked_outputs(repo))
    assert (repo / out).read_bytes() == b"the stage's own business\n"


def test_pull_tells_the_hash_cache_what_it_wrote_and_a_failure_names_what_it_kept(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "remote"
    _listing_store(repo, tmp_path)
    fresh = clone(repo, tmp_path / "fresh")
    monkeypatch.chdir(fresh)
    assert CliRunner().invoke(pull_command, ["--store", str(store)]).exit_code == 0
    with Hasher(fresh / ".dvc/tmp/executor/state.sqlite", root=fresh) as hasher:
        hasher.hash_many([fresh / "out/listing", fresh / "out/model.bin"])
        assert hasher.files_read == 0  # every file was remembered as it was written
    (fresh / "out/listing/new.txt").write_bytes(b"mine\n")
    (fresh / "out/tool.sh").unlink()
    for obj in (store / "files/md5").rglob("*"):
        if obj.is_file() and obj.read_bytes() == b"#!/bin/sh\necho hi\n":
            obj.unlink()
    shutil.rmtree(fresh / ".dvc/cache")
    result = CliRunner().invoke(pull_command, ["--store", str(store)])
    assert result.exit_code == 3, result.output
    assert "also kept 1 changed file(s) that are in no cache (out/listing/new.txt)" in result.output
