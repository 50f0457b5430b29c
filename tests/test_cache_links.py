"""cache.type (hardlink, symlink, copy): executor leaves the workspace linked to the cache as
DVC does, after a run and after a pull, never lets a stage change an object through a link,
and never stores a byte twice where links are asked for. DVC is the oracle."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_containers")

PIPELINE = """\
stages:
  gen:
    cmd: mkdir -p out/dir && cp data/in.txt out/copy.txt && cp data/in.txt out/dir/a.txt
      && echo b > out/dir/b.txt && cp data/tool.sh out/tool.sh
    deps: [data/in.txt, data/tool.sh]
    outs: [out/copy.txt, out/dir, out/tool.sh]
  log:
    cmd: cat data/in.txt >> out/log.txt
    deps: [data/in.txt]
    outs:
    - out/log.txt:
        persist: true
"""
FILES = {"dvc.yaml": PIPELINE, "data/in.txt": "first\n", "data/tool.sh": "#!/bin/sh\necho t\n"}
LINKED = ("out/copy.txt", "out/dir/a.txt", "out/dir/b.txt", "out/tool.sh")


def obj(root: Path, path: Path) -> Path:
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    return root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]


def objects_intact(root: Path) -> None:
    for path in (root / ".dvc/cache/files/md5").rglob("*"):
        if path.is_file() and not path.name.endswith(".dir"):
            name = path.parent.name + path.name
            assert hashlib.md5(path.read_bytes()).hexdigest() == name, path


def hardlinked(root: Path, rel: str) -> bool:
    path = root / rel
    return not path.is_symlink() and path.stat().st_ino == obj(root, path).stat().st_ino


def test_a_run_links_outputs_like_dvc_repro_and_persist_outputs_stay_changeable(
    make_repo, executor_cli, dvc_cli
) -> None:
    ours, theirs = make_repo(FILES, "ours"), make_repo(FILES, "theirs")
    for root in (ours, theirs):
        (root / "data/tool.sh").chmod(0o755)
        with_links(root, "hardlink")
    done = executor_cli(ours, "run")
    assert done.returncode == 0, done.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "dvc.lock").read_bytes() == (theirs / "dvc.lock").read_bytes()
    for rel in LINKED:
        assert hardlinked(ours, rel) and hardlinked(theirs, rel), rel
        assert not os.access(ours / rel, os.W_OK) or os.getuid() == 0, rel  # read-only 0444
        assert stat.S_IMODE((ours / rel).stat().st_mode) & 0o222 == 0, rel
    assert os.access(ours / "out/tool.sh", os.X_OK)
    assert hardlinked(ours, "out/log.txt") and hardlinked(theirs, "out/log.txt")  # persist too
    assert "up to date" in dvc_cli(ours, "status").stdout

    for root in (ours, theirs):  # the persist stage appends to its output in place
        (root / "data/in.txt").write_text("second\n")
    again = executor_cli(ours, "run")
    assert again.returncode == 0, again.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "out/log.txt").read_text() == "first\nsecond\n"
    assert (ours / "dvc.lock").read_bytes() == (theirs / "dvc.lock").read_bytes()
    objects_intact(ours)
    assert hardlinked(ours, "out/copy.txt")
    assert hardlinked(ours, "out/log.txt") and hardlinked(theirs, "out/log.txt")
    first = hashlib.md5(b"first\n").hexdigest()  # the first run's log: its object intact
    assert (ours / ".dvc/cache/files/md5" / first[:2] / first[2:]).read_text() == "first\n"


def test_a_persist_output_linked_by_dvc_is_unprotected_before_the_stage_runs(
    make_repo, executor_cli, dvc_cli
) -> None:
    root = make_repo(FILES)
    (root / "data/tool.sh").chmod(0o755)
    with_links(root, "hardlink")
    assert dvc_cli(root, "repro").returncode == 0
    assert hardlinked(root, "out/log.txt")  # DVC links persist outputs too
    (root / "data/in.txt").write_text("second\n")
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert (root / "out/log.txt").read_text() == "first\nsecond\n"
    objects_intact(root)  # the object of "first\n" was not appended to through the link


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "copy"])
def test_pull_links_as_dvc_pull_does(kind: str, make_repo, executor_cli, dvc_cli, tmp_path):
    origin = make_repo({"data/set/a.txt": "a\n", "data/set/sub/b.txt": "b\n", "one.txt": "1\n"})
    config = origin / ".dvc/config"
    config.write_text(
        config.read_text() + f"    remote = store\n[cache]\n    type = {kind}\n"
        f"['remote \"store\"']\n    url = {tmp_path / 'store'}\n"
    )
    for target in ("data/set", "one.txt"):
        assert dvc_cli(origin, "add", "-q", target).returncode == 0
    assert dvc_cli(origin, "push", "-q").returncode == 0
    clones = {}
    for tool in ("executor", "dvc"):
        clone = make_repo({}, f"clone-{tool}")
        shutil.copy(config, clone / ".dvc/config")
        for name in ("data/set.dvc", "one.txt.dvc"):
            (clone / name).parent.mkdir(exist_ok=True)
            shutil.copy(origin / name, clone / name)
        run = executor_cli if tool == "executor" else dvc_cli
        done = run(clone, "pull")
        assert done.returncode == 0, done.stderr
        clones[tool] = clone
    for rel in ("data/set/a.txt", "data/set/sub/b.txt", "one.txt"):
        ours, theirs = clones["executor"] / rel, clones["dvc"] / rel
        assert ours.read_bytes() == theirs.read_bytes()
        assert ours.is_symlink() == theirs.is_symlink() == (kind == "symlink"), rel
        if kind == "symlink":
            assert os.readlink(ours) == str(obj(clones["executor"], ours)), rel
        linked = ours.stat().st_ino == obj(clones["executor"], ours).stat().st_ino
        assert linked == (kind != "copy"), rel
        if kind != "symlink":
            assert (ours.stat().st_nlink > 1) == (theirs.stat().st_nlink > 1), rel
    assert "up to date" in dvc_cli(clones["executor"], "status").stdout
    again = executor_cli(clones["executor"], "pull")
    assert "Everything is up to date." in again.stdout, again.stdout


def with_links(root: Path, kind: str = "hardlink") -> None:
    config = root / ".dvc/config"
    config.write_text(config.read_text() + f"[cache]\n    type = {kind}\n")


def test_a_link_a_stage_left_in_a_persist_output_never_brings_a_host_file_in(
    make_repo, executor_cli, tmp_path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST SECRET\n")
    secret.chmod(0o600)
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  s:\n    cmd: (cat state/x > leak.txt || echo none > leak.txt)"
            f" && rm -f state/x && mkdir -p state && ln -s {secret} state/x\n"
            "    outs: [leak.txt, {state: {persist: true}}]\n"
        }
    )
    for _ in range(2):  # the second run starts with the link in place
        done = executor_cli(root, "run", "--force")
        assert done.returncode != 0 and "a symlink leading outside" in done.stderr
    assert "HOST SECRET" not in (root / "leak.txt").read_text()
    assert (root / "state/x").is_symlink()  # left as the stage made it, not copied


def test_an_object_changed_through_a_writable_link_is_dropped_not_linked_to(
    make_repo, executor_cli
) -> None:
    root = make_repo(
        {"dvc.yaml": "stages:\n  s:\n    cmd: echo good > out.txt\n    outs: [out.txt]\n"}
    )
    with_links(root)
    assert executor_cli(root, "run").returncode == 0
    (root / "out.txt").chmod(0o644)  # what a user does to edit a hardlinked output
    with (root / "out.txt").open("a") as f:
        f.write("bad\n")
    done = executor_cli(root, "run", "--force")
    assert done.returncode == 0, done.stderr
    assert (root / "out.txt").read_text() == "good\n"
    assert hardlinked(root, "out.txt")
    assert stat.S_IMODE((root / "out.txt").stat().st_mode) == 0o444
    objects_intact(root)


def test_linking_a_directory_output_keeps_the_files_dvcignore_hides(
    make_repo, executor_cli
) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  s:\n    cmd: mkdir -p out && echo a > out/a.txt"
            " && echo noise > out/debug.log\n    outs: [out]\n",
            ".dvcignore": "out/*.log\n",
        }
    )
    with_links(root)
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert (root / "out/debug.log").read_text() == "noise\n"
    assert hardlinked(root, "out/a.txt")


def test_a_persist_output_symlinked_to_the_cache_is_appended_to_without_touching_the_object(
    make_repo, executor_cli, dvc_cli
) -> None:
    ours, theirs = make_repo(FILES, "ours"), make_repo(FILES, "theirs")
    for root in (ours, theirs):
        (root / "data/tool.sh").chmod(0o755)
        with_links(root, "symlink")
    for text in ("first\n", "second\n"):
        for root in (ours, theirs):
            (root / "data/in.txt").write_text(text)
        done = executor_cli(ours, "run")
        assert done.returncode == 0, done.stderr
        assert dvc_cli(theirs, "repro").returncode == 0
        for root in (ours, theirs):
            log = root / "out/log.txt"
            assert log.is_symlink() and Path(os.readlink(log)) == obj(root, log), root
        assert (ours / "dvc.lock").read_bytes() == (theirs / "dvc.lock").read_bytes()
    assert (ours / "out/log.txt").read_text() == "first\nsecond\n"
    objects_intact(ours)


METRIC_PIPELINE = """\
stages:
  score:
    cmd: cp data/in.txt out.txt && echo 1 > metrics.json
    deps: [data/in.txt]
    outs: [out.txt]
    metrics:
    - metrics.json:
        cache: false
"""


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_cache_false_metric_stays_a_file_of_its_own_as_with_dvc(
    kind: str, make_repo, executor_cli, dvc_cli
) -> None:
    """DVC stores a `cache: false` metric for its run-cache only, by copy: in the workspace it
    stays a plain writable file (git tracks it), after a run and after a restore."""
    files = {"dvc.yaml": METRIC_PIPELINE, "data/in.txt": "first\n"}
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    for root in (ours, theirs):
        with_links(root, kind)
    for step in ("run", "restore"):
        if step == "restore":
            for root in (ours, theirs):
                (root / "metrics.json").unlink()
                (root / "out.txt").unlink()
        done = executor_cli(ours, "run")
        assert done.returncode == 0, done.stderr
        assert dvc_cli(theirs, "repro").returncode == 0
        for root in (ours, theirs):
            metric = root / "metrics.json"
            assert not metric.is_symlink() and metric.stat().st_nlink == 1, (step, root)
            assert stat.S_IMODE(metric.stat().st_mode) == 0o644, (step, root)
            assert (root / "out.txt").is_symlink() or hardlinked(root, "out.txt"), (step, root)
        assert (ours / "dvc.lock").read_bytes() == (theirs / "dvc.lock").read_bytes()
    assert "is cached" in done.stdout
    objects_intact(ours)


def test_empty_folders_a_stage_leaves_in_a_directory_output_stay_as_with_dvc(
    make_repo, executor_cli, dvc_cli
) -> None:
    files = {
        "dvc.yaml": (
            "stages:\n  gen:\n"
            "    cmd: mkdir -p out/empty/inner out/x && cp in.txt out/x/a.txt\n"
            "    deps: [in.txt]\n    outs: [out]\n"
        ),
        "in.txt": "a\n",
    }
    ours, theirs = make_repo(files, "ours"), make_repo(files, "theirs")
    for root in (ours, theirs):
        with_links(root, "hardlink")
    done = executor_cli(ours, "run")
    assert done.returncode == 0, done.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    assert (ours / "out/empty/inner").is_dir() and (theirs / "out/empty/inner").is_dir()
    assert hardlinked(ours, "out/x/a.txt") and hardlinked(theirs, "out/x/a.txt")
