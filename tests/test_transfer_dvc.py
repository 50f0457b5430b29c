"""DVC is the oracle: what executor pushes, `dvc pull` restores; what `dvc push` uploads,
executor pulls; run-cache entries executor pushes let `dvc repro` restore instead of run.
What `dvc push` and executor do also runs on s3s-fs, which checks every request's signature
(DVC's as well as ours); `dvc pull` cannot read from it (S3S_HEAD_OF_A_FOLDER)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.settings import Settings
from executor.store.local import LocalStore
from executor.store.open import open_store
from executor.store.tracked import tracked_outputs
from executor.store.transfer import pull, push
from tests.fixtures.s3_server import Bucket
from tests.fixtures.s3s_server import on_every_s3

# A stage refuses to run when FORBID is set: a restore from the run-cache is the only way.
DVC_YAML = """\
stages:
  upper:
    cmd: '[ -z "$FORBID" ] && mkdir -p out && tr a-z A-Z < data/in.txt > out/upper.txt'
    deps: [data/in.txt]
    outs: [out/upper.txt]
  listing:
    cmd: '[ -z "$FORBID" ] && mkdir -p out/listing/sub && cp data/in.txt out/listing/a.txt
      && cat data/in.txt data/in.txt > out/listing/sub/b.txt'
    deps: [data/in.txt]
    outs: [out/listing]
  tool:
    cmd: '[ -z "$FORBID" ] && cp scripts/tool.sh out/tool.sh'
    deps: [scripts/tool.sh, out/upper.txt]
    outs: [out/tool.sh]
"""
OUTPUTS = ("out/upper.txt", "out/listing/a.txt", "out/listing/sub/b.txt", "out/tool.sh")
# `dvc pull` first checks that the remote's files/md5 exists, with a HEAD that real S3 and
# moto answer 404: s3s-fs answers 500 for a key that is a folder of its own. So `dvc pull`
# never reads from s3s-fs; `dvc push` (and executor pulling what it pushed) works.
S3S_HEAD_OF_A_FOLDER = (
    "a 404 for a HEAD of a key that only prefixes others (it answers 500, EISDIR), "
    "which `dvc pull` sends first"
)


def run(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    full = {
        **os.environ,
        "SHELL": "/bin/sh",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        **(env or {}),
    }
    done = subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A git repository whose pipeline `dvc repro` ran, committed (outputs and cache are not)."""
    if shutil.which("dvc") is None or shutil.which("git") is None:
        pytest.fail("dvc and git are needed for the interoperability tests")
    root = tmp_path_factory.mktemp("dvc") / "origin"
    (root / "data").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "data/in.txt").write_text("hello\n")
    (root / "scripts/tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.chmod(root / "scripts/tool.sh", 0o755)
    (root / "dvc.yaml").write_text(DVC_YAML)
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "dvc", "repro", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "pipeline")
    yield root


def fresh_clone(origin: Path, dest: Path, bucket: Bucket, prefix: str) -> Path:
    run(dest.parent, "git", "clone", "-q", str(origin), str(dest))
    (dest / ".dvc/config.local").write_text(
        "[core]\n    remote = s3\n"
        f"['remote \"s3\"']\n    url = {bucket.url(prefix)}\n    endpointurl = {bucket.endpoint}\n"
    )
    return dest


def store_for(bucket: Bucket, prefix: str):  # type: ignore[no-untyped-def]
    return open_store(bucket.url(prefix), Settings(s3_endpoint_url=bucket.endpoint))


def cache(root: Path) -> LocalStore:
    return LocalStore(root / ".dvc/cache")


@on_every_s3(s3s_lacks=S3S_HEAD_OF_A_FOLDER)
def test_dvc_pull_restores_what_executor_pushed(
    built: Path, s3_bucket: Bucket, tmp_path: Path
) -> None:
    push(cache(built), store_for(s3_bucket, "p"), tracked_outputs(built))
    clone = fresh_clone(built, tmp_path / "clone", s3_bucket, "p")
    run(clone, "dvc", "pull")
    for rel in OUTPUTS:
        assert (clone / rel).read_bytes() == (built / rel).read_bytes(), rel
    assert os.access(clone / "out/tool.sh", os.X_OK)
    assert "Everything is up to date" in run(clone, "dvc", "push")  # nothing DVC would add


@on_every_s3()
def test_executor_pulls_what_dvc_pushed(built: Path, s3_bucket: Bucket, tmp_path: Path) -> None:
    origin = fresh_clone(built, tmp_path / "origin", s3_bucket, "d")
    shutil.copytree(built / ".dvc/cache", origin / ".dvc/cache")
    run(origin, "dvc", "push", "-q")
    clone = fresh_clone(built, tmp_path / "clone", s3_bucket, "d")
    report = pull(cache(clone), store_for(s3_bucket, "d"), clone, tracked_outputs(clone))
    assert report.moved == 5 and not report.failed  # 2 files, a manifest and its 2 files
    for rel in OUTPUTS:
        assert (clone / rel).read_bytes() == (built / rel).read_bytes(), rel
    assert os.access(clone / "out/tool.sh", os.X_OK)
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status")


def test_dvc_repro_restores_from_run_cache_executor_pushed(
    built: Path, s3_bucket: Bucket, tmp_path: Path
) -> None:
    report = push(cache(built), store_for(s3_bucket, "r"), tracked_outputs(built), run_cache=True)
    assert report.runs == 3
    clone = fresh_clone(built, tmp_path / "clone", s3_bucket, "r")
    run(clone, "dvc", "pull", "--run-cache", "-q")
    for rel in (*OUTPUTS, "dvc.lock"):
        (clone / rel).unlink()
    out = run(clone, "dvc", "repro", env={"FORBID": "1"})
    for stage in ("upper", "listing", "tool"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out
    for rel in (*OUTPUTS, "dvc.lock"):
        assert (clone / rel).read_bytes() == (built / rel).read_bytes(), rel


def _executor(cwd: Path, *argv: str, code: int = 0) -> str:
    from click.testing import CliRunner

    from executor.cli.app import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(argv))
    finally:
        os.chdir(old)
    assert result.exit_code == code, result.output
    return result.output


def test_push_and_pull_go_to_the_default_dvc_remote_with_its_own_keys(
    built: Path, s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured by DVC's own commands; the keys only in config.local, none in the
    environment: executor reads the same remote DVC would, and `dvc pull` gets the data."""
    origin = tmp_path / "origin"
    run(tmp_path, "git", "clone", "-q", str(built), str(origin))
    shutil.copytree(built / ".dvc/cache", origin / ".dvc/cache")
    run(origin, "dvc", "remote", "add", "-d", "team", s3_bucket.url("team"))
    run(origin, "dvc", "remote", "modify", "team", "endpointurl", s3_bucket.endpoint)
    for key, env_name in (("access_key_id", "AWS_ACCESS_KEY_ID"),
                          ("secret_access_key", "AWS_SECRET_ACCESS_KEY")):  # fmt: skip
        run(origin, "dvc", "remote", "modify", "--local", "team", key, os.environ[env_name])
    monkeypatch.delenv("EXECUTOR_STORE", raising=False)
    monkeypatch.delenv("EXECUTOR_S3_ENDPOINT_URL", raising=False)
    with monkeypatch.context() as keyless:
        keyless.delenv("AWS_ACCESS_KEY_ID")
        keyless.delenv("AWS_SECRET_ACCESS_KEY")
        assert "5 objects pushed" in _executor(origin, "push")
        assert s3_bucket.keys("team/files/md5/")
        run(origin, "git", "add", "-A")
        run(origin, "git", "commit", "-q", "-m", "remote")
        clone = tmp_path / "clone"
        run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
        shutil.copy(origin / ".dvc/config.local", clone / ".dvc/config.local")
        assert "5 objects fetched" in _executor(clone, "pull")
    for rel in OUTPUTS:
        assert (clone / rel).read_bytes() == (built / rel).read_bytes(), rel
    dvc_clone = tmp_path / "dvc-clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(dvc_clone))
    run(dvc_clone, "dvc", "pull", "-q")  # DVC finds what executor pushed, where it pushed it
    for rel in OUTPUTS:
        assert (dvc_clone / rel).read_bytes() == (built / rel).read_bytes(), rel


def test_remote_by_name_and_a_relative_folder_remote_as_dvc_resolves_it(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = tmp_path / "origin"
    run(tmp_path, "git", "clone", "-q", str(built), str(origin))
    shutil.copytree(built / ".dvc/cache", origin / ".dvc/cache")
    run(origin, "dvc", "remote", "add", "backup", "../backup")  # stored relative to .dvc/
    run(origin, "dvc", "remote", "add", "-d", "elsewhere", "gs://bucket/path")
    monkeypatch.delenv("EXECUTOR_STORE", raising=False)
    assert "gs://bucket/path: executor stores are S3" in _executor(origin, "push", code=2)
    run(origin, "dvc", "remote", "remove", "elsewhere")  # DVC itself needs a plugin for gs
    assert "5 objects pushed" in _executor(origin, "push", "-r", "backup")
    assert (tmp_path / "backup/files/md5").is_dir()
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "remotes")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    run(clone, "dvc", "pull", "-q", "-r", "backup")
    for rel in OUTPUTS:
        assert (clone / rel).read_bytes() == (built / rel).read_bytes(), rel
    assert "no DVC remote named 'nope' (defined: backup)" in _executor(
        origin, "pull", "-r", "nope", code=2
    )
    assert "not both" in _executor(origin, "push", "-r", "backup", "--store", "x", code=2)


ROUTED_YAML = """\
stages:
  make:
    cmd: mkdir -p out && echo kept > out/kept.txt && echo elsewhere > out/away.txt
    outs:
    - out/kept.txt
    - out/away.txt:
        remote: other
"""


def _objects(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_an_output_with_its_own_remote_goes_there_as_with_dvc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`remote:` on an output (dvc.yaml) or in a .dvc file routes it; -r skips outputs that
    name another remote, as DVC does. dvc pull then finds every object where it looks."""
    monkeypatch.delenv("EXECUTOR_STORE", raising=False)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text(ROUTED_YAML)
    (root / "raw.txt").write_text("raw data\n")
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "dvc", "remote", "add", "-d", "main", str(tmp_path / "main"))
    run(root, "dvc", "remote", "add", "other", str(tmp_path / "other"))
    run(root, "dvc", "repro", "-q")
    run(root, "dvc", "add", "-q", "raw.txt")
    dvcfile = root / "raw.txt.dvc"
    dvcfile.write_text(
        dvcfile.read_text().replace("  path: raw.txt\n", "  path: raw.txt\n  remote: other\n")
    )
    assert "remote: other" in dvcfile.read_text()

    assert "1 objects pushed" in _executor(root, "push", "-r", "main")  # only out/kept.txt
    assert len(_objects(tmp_path / "main")) == 1 and not _objects(tmp_path / "other")
    assert "2 objects pushed" in _executor(root, "push")  # the rest, to `other`
    assert len(_objects(tmp_path / "main")) == 1 and len(_objects(tmp_path / "other")) == 2

    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "routed")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    run(clone, "dvc", "pull", "-q")
    for rel in ("out/kept.txt", "out/away.txt", "raw.txt"):
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel
    ours = tmp_path / "ours"
    run(tmp_path, "git", "clone", "-q", str(root), str(ours))
    assert "3 objects fetched, 3 files checked out" in _executor(ours, "pull")
    for rel in ("out/kept.txt", "out/away.txt", "raw.txt"):
        assert (ours / rel).read_bytes() == (root / rel).read_bytes(), rel


CRLF = b"one\r\ntwo\r\n" * 3


@pytest.fixture(scope="module")
def built_dvc2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository as DVC 2.x left it: .dvc files without `hash: md5` (md5-dos2unix, a CRLF
    text file recorded by its LF md5), objects directly under the cache root."""
    root = tmp_path_factory.mktemp("dvc2") / "origin"
    (root / "data/dir").mkdir(parents=True)
    (root / "data/crlf.txt").write_bytes(CRLF)
    (root / "data/dir/bin.dat").write_bytes(b"\x00\x01\r\n\xff")
    (root / "data/dir/plain.txt").write_bytes(b"plain\n")
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "dvc", "add", "-q", "data/crlf.txt", "data/dir")
    plain, dos2unix = (hashlib.md5(c).hexdigest() for c in (CRLF, CRLF.replace(b"\r\n", b"\n")))
    for dvcfile in (root / "data/crlf.txt.dvc", root / "data/dir.dvc"):
        text = "".join(line for line in dvcfile.read_text().splitlines(True) if "hash:" not in line)
        dvcfile.write_text(text.replace(plain, dos2unix))
    objects = root / ".dvc/cache/files/md5"
    for obj in objects.rglob("*"):
        if obj.is_file():
            name = obj.parent.name + obj.name
            name = dos2unix if name == plain else name
            dest = root / ".dvc/cache" / name[:2] / name[2:]
            dest.parent.mkdir(exist_ok=True)
            obj.rename(dest)
    shutil.rmtree(root / ".dvc/cache/files")
    shutil.rmtree(root / ".dvc/tmp")
    assert "up to date" in run(root, "dvc", "status")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "data")
    yield root


DVC2_FILES = ("data/crlf.txt", "data/dir/bin.dat", "data/dir/plain.txt")


def test_dvc2_outputs_go_to_the_2x_layout_where_dvc_pull_finds_them(
    built_dvc2: Path, s3_bucket: Bucket, tmp_path: Path
) -> None:
    outputs = tracked_outputs(built_dvc2)
    assert sorted((o.path, o.legacy) for o in outputs) == [
        ("data/crlf.txt", True),
        ("data/dir", True),
    ]
    report = push(cache(built_dvc2), store_for(s3_bucket, "p2"), outputs)
    assert report.moved == 4 and not report.failed  # a file, a manifest and its 2 files
    keys = s3_bucket.keys("p2/")
    assert len(keys) == 4 and not any(k.startswith("p2/files/") for k in keys), keys
    clone = fresh_clone(built_dvc2, tmp_path / "clone", s3_bucket, "p2")
    run(clone, "dvc", "pull")
    for rel in DVC2_FILES:
        assert (clone / rel).read_bytes() == (built_dvc2 / rel).read_bytes(), rel
    assert "Everything is up to date" in run(clone, "dvc", "push")


@on_every_s3()
def test_executor_pulls_dvc2_outputs_dvc_pushed(
    built_dvc2: Path, s3_bucket: Bucket, tmp_path: Path
) -> None:
    origin = fresh_clone(built_dvc2, tmp_path / "origin", s3_bucket, "d2")
    shutil.copytree(built_dvc2 / ".dvc/cache", origin / ".dvc/cache")
    run(origin, "dvc", "push", "-q")
    clone = fresh_clone(built_dvc2, tmp_path / "clone", s3_bucket, "d2")
    report = pull(cache(clone), store_for(s3_bucket, "d2"), clone, tracked_outputs(clone))
    assert report.moved == 4 and not report.failed
    for rel in DVC2_FILES:
        assert (clone / rel).read_bytes() == (built_dvc2 / rel).read_bytes(), rel
    dos2unix = hashlib.md5(CRLF.replace(b"\r\n", b"\n")).hexdigest()
    assert (clone / ".dvc/cache" / dos2unix[:2] / dos2unix[2:]).read_bytes() == CRLF
    assert not (clone / ".dvc/cache/files").exists()
    assert "up to date" in run(clone, "dvc", "status")
    again = pull(cache(clone), store_for(s3_bucket, "d2"), clone, tracked_outputs(clone))
    assert (again.moved, again.checked_out) == (0, 0)
