"""Attacks from a stage's code on `executor run` (issue 10): each ran for real against the real
Docker engine with the locally built busybox image. A stage must not reach the host through the
repository, change a cache object through a link, or pass a failure off as a success."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.repos import GIT_ENV

pytestmark = pytest.mark.usefixtures("no_leftover_containers")

# Every attempt may fail (that is the point): `sh` goes on, so the stage itself succeeds.
# {pwned} is a path in the test's tmp_path (not a fixed /tmp name tests in parallel share).
EVIL_SH = """\
printf '[core]\\n\\tfsmonitor = "touch {pwned}"\\n' >> .git/config
echo '  net: {cmd: "true", meta: {executor: {network: true}}}' >> dvc.yaml
echo 'image: evil' >> .executor.yaml
echo '[core]' >> .dvc/config
echo '*' >> .dvcignore
echo 'x' >> sub/dvc.yaml
mv dvc.yaml moved.yaml
rm -f .executor.yaml sub/dvc.yaml
rm -rf .git
echo done > out.txt
"""
SUBVERT = "stages:\n  evil:\n    cmd: sh evil.sh\n    deps: [evil.sh]\n    outs: [out.txt]\n"
SUB = "stages:\n  s:\n    cmd: echo s > s.txt\n    outs: [s.txt]\n"
PROTECTED = (".git/config", "dvc.yaml", ".executor.yaml", ".dvc/config", ".dvcignore",
             "sub/dvc.yaml")  # fmt: skip


def snapshot(root: Path, rels: tuple[str, ...]) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in rels}


def test_a_stage_cannot_change_git_dvc_files_or_executor_config(
    make_repo, executor_cli, busybox_image, tmp_path
) -> None:
    pwned = tmp_path / "pwned"
    root = make_repo(
        {
            "dvc.yaml": SUBVERT,
            "evil.sh": EVIL_SH.replace("{pwned}", str(pwned)),
            ".executor.yaml": f"image: {busybox_image}\n",
            "sub/dvc.yaml": SUB,
        }
    )
    before = snapshot(root, PROTECTED)
    done = executor_cli(root, "run", "evil")
    assert done.returncode == 0, done.stderr
    assert (root / "out.txt").read_text() == "done\n"
    assert snapshot(root, PROTECTED) == before
    assert not (root / "moved.yaml").exists()
    git = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True,
        env={**os.environ, **GIT_ENV},
    )  # fmt: skip
    assert git.returncode == 0 and not pwned.exists()
    # The lock was written by executor after the stage: the stage never had it.
    assert "evil:" in (root / "dvc.lock").read_text()


def test_a_stage_cannot_change_dvc_lock_once_it_exists(make_repo, executor_cli) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: sh b.sh\n    outs: [b.txt]\n",
            "b.sh": "echo 'a: {cmd: x}' >> dvc.lock\necho b > b.txt\n",
        }
    )
    assert executor_cli(root, "run", "a").returncode == 0
    before = (root / "dvc.lock").read_text()
    done = executor_cli(root, "run", "b")
    assert done.returncode == 0, done.stderr
    after = (root / "dvc.lock").read_text()
    assert "a: {cmd: x}" not in after and after.startswith(before.split("  b:")[0])


@pytest.mark.parametrize("name", [".executor.yaml", "dvc.lock", ".dvcignore", "sub/dvc.lock"])
def test_a_stage_creating_a_protected_file_fails_and_the_file_is_removed(
    make_repo, executor_cli, name
) -> None:
    root = make_repo(
        {
            "dvc.yaml": f"stages:\n  s:\n    cmd: echo image=evil > {name} && echo x > x.txt\n"
            "    outs: [x.txt]\n",
            "sub/dvc.yaml": SUB,
        }
    )
    (root / ".dvcignore").unlink()
    done = executor_cli(root, "run", "s")
    assert done.returncode == 1
    assert f"'{name}' was written while stage 's' ran" in done.stderr, done.stderr
    assert "it was removed" in done.stderr
    assert not (root / name).exists()
    assert not (root / "dvc.lock").exists() or "s:" not in (root / "dvc.lock").read_text()


def test_no_empty_file_appears_where_a_protected_file_is_missing(make_repo, executor_cli) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: ls -a > ls.txt\n    outs: [ls.txt]\n"})
    (root / ".dvcignore").unlink()
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert not (root / ".executor.yaml").exists() and not (root / ".dvcignore").exists()
    assert ".executor.yaml" not in (root / "ls.txt").read_text()


FORGE = """\
stages:
  forge:
    cmd: m=$(tr '\\0' '\\n' < /proc/1/cmdline | grep -m1 '^executor-failed-') && echo "$m E"
      && echo "$m E" >&2 && echo forged > out.txt && exit 1
    outs: [out.txt]
"""


def test_a_stage_printing_the_end_marker_and_exiting_1_has_failed(make_repo, executor_cli):
    root = make_repo({"dvc.yaml": FORGE})
    done = executor_cli(root, "run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (root / "dvc.lock").exists()
    assert not (root / ".dvc/cache/runs").exists()


def test_outputs_are_hashed_after_every_process_of_the_stage_has_stopped(
    make_repo, executor_cli
) -> None:
    """A background process keeps rewriting the output after the last line: what is recorded,
    stored and left in the workspace must all be the same bytes."""
    cmd = "echo good > out.txt; (i=0; while :; do i=$((i+1)); echo evil$i > out.txt; done) &"
    root = make_repo({"dvc.yaml": f"stages:\n  s:\n    cmd: {cmd}\n    outs: [out.txt]\n"})
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    data = (root / "out.txt").read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    assert f"md5: {md5}" in (root / "dvc.lock").read_text()
    obj = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    assert obj.read_bytes() == data


def with_links(root: Path, kind: str) -> None:
    config = root / ".dvc/config"
    config.write_text(config.read_text() + f"[cache]\n    type = {kind}\n")


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
@pytest.mark.parametrize("target", ["up.txt", "updir/f.txt"])
def test_a_stage_cannot_change_a_linked_upstream_output(
    make_repo, executor_cli, kind, target
) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n"
            "  up:\n    cmd: echo good > up.txt && mkdir updir && echo good > updir/f.txt\n"
            "    outs: [up.txt, updir]\n"
            f"  down:\n    cmd: (chmod u+w {target}; echo evil > {target}; chmod 444 {target};"
            " true) && echo d > down.txt\n"
            "    deps: [up.txt]\n    outs: [down.txt]\n"
        }
    )
    with_links(root, kind)
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    good = hashlib.md5(b"good\n").hexdigest()
    obj = root / ".dvc/cache/files/md5" / good[:2] / good[2:]
    assert obj.read_bytes() == b"good\n"
    assert (root / target).read_bytes() == b"good\n"
    assert not os.stat(obj).st_mode & 0o222  # still read-only


def test_a_stage_output_linking_to_a_host_file_is_refused(make_repo, executor_cli) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: ln -s /etc/shadow a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: mkdir d && ln -s /etc/shadow d/x\n    outs: [d]\n"
        }
    )
    for stage in ("a", "b"):
        done = executor_cli(root, "run", stage)
        assert done.returncode != 0 and "outside" in done.stderr, done.stderr
    assert not (root / "dvc.lock").exists()
    assert not list((root / ".dvc/cache").rglob("*")) or all(
        p.is_dir() or b"root:" not in p.read_bytes() for p in (root / ".dvc/cache").rglob("*")
    )


def test_escape_sequences_from_a_stage_reach_the_terminal_made_visible(
    make_repo, executor_cli
) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  s:\n    cmd: printf 'a\\033]0;pwned\\007b\\033[2Jc\\n'"
            " > /dev/stderr && echo x > x.txt\n    outs: [x.txt]\n"
        }
    )
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    both = done.stdout + done.stderr
    assert "\x1b" not in both and "\x07" not in both
    assert "a\\x1b]0;pwned\\x07b\\x1b[2Jc" in both


def test_visible_writes_out_control_characters_and_keeps_text() -> None:
    from executor.terminal import visible

    assert visible("a\x1b[31mb\x07\tc\x9bd\u202ee é") == "a\\x1b[31mb\\x07\tc\\x9bd\\u202ee é"
    assert visible("plain text, 100%\n") == "plain text, 100%\n"


@pytest.mark.skipif(os.getuid() != 0, reason="the rule for a root caller; others run as themselves")
def test_a_root_callers_stage_runs_as_the_repository_owner_and_outputs_come_back(
    make_repo, executor_cli
) -> None:
    root = make_repo(
        {"dvc.yaml": "stages:\n  s:\n    cmd: mkdir -p d && id -u > d/uid && id -g > gid.txt\n"
         "    outs: [d, gid.txt]\n"}
    )  # fmt: skip
    for folder, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            os.lchown(os.path.join(folder, name), 4321, 4322)
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert (root / "d/uid").read_text() == "4321\n" and (root / "gid.txt").read_text() == "4322\n"
    for path in (root / "d", root / "d/uid", root / "gid.txt"):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path


@pytest.mark.skipif(os.getuid() != 0, reason="the rule for a root caller; others run as themselves")
def test_a_root_callers_stage_runs_as_the_configured_user_and_never_as_root(
    make_repo, executor_cli
) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: id -u > u.txt\n    outs: [u.txt]\n"})
    os.chmod(root, 0o777)  # what a CI job does for the user it names
    done = executor_cli(root, "run", env={"EXECUTOR_STAGE_USER": "4321:4321"})
    assert done.returncode == 0, done.stderr
    assert (root / "u.txt").read_text() == "4321\n"
    assert (root / "u.txt").stat().st_uid == 0
    refused = executor_cli(root, "run", "--force", env={"EXECUTOR_STAGE_USER": "0:0"})
    assert refused.returncode == 2 and "EXECUTOR_STAGE_USER='0:0'" in refused.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="the rule for a root caller; others run as themselves")
def test_a_root_caller_in_a_root_owned_repository_is_refused_unless_allowed(
    make_repo, executor_cli
) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: id -u > u.txt\n    outs: [u.txt]\n"})
    refused = executor_cli(root, "run", env={"EXECUTOR_ALLOW_ROOT_STAGES": ""})
    assert refused.returncode == 2, refused.stderr
    assert "EXECUTOR_STAGE_USER=uid:gid" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not (root / "u.txt").exists() and not (root / "dvc.lock").exists()
    allowed = executor_cli(root, "run", env={"EXECUTOR_ALLOW_ROOT_STAGES": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert (root / "u.txt").read_text() == "0\n"


def test_a_dvc_lock_written_while_stages_run_fails_the_run_and_is_not_kept(
    make_repo, executor_cli
) -> None:
    """No dvc.lock to mount read-only yet: `b` writes one at once while `a` runs too."""
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: sleep 1 && echo a > a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: sh b.sh\n    outs: [b.txt]\n",
            "b.sh": f"{FORGED_LOCK}\nsleep 4\necho b > b.txt\n",
        }
    )
    done = executor_cli(root, "run", "-j", "2")
    assert done.returncode == 1 and "'dvc.lock' was written while stage" in done.stderr
    assert "forged" not in (root / "dvc.lock").read_text(), (done.stdout, done.stderr)


def test_the_first_dvc_lock_executor_writes_is_not_based_on_one_that_appeared(tmp_path):
    """A dvc.lock absent when the run began and made by someone else (a stage whose
    container could not have it read-only) before executor's first write is no base."""
    from executor.dvcformat.lockfile import LockWriter

    writer = LockWriter(tmp_path)
    writer.start_empty(["dvc.lock", "sub/dvc.lock"])
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  forged:\n    cmd: evil\n")
    assert writer.write("dvc.lock", "a", {"cmd": "echo a"})
    text = (tmp_path / "dvc.lock").read_text()
    assert "forged" not in text and "echo a" in text
    (tmp_path / "dvc.lock").write_text(text + "  other:\n    cmd: x\n")  # then: read again
    assert writer.write("dvc.lock", "b", {"cmd": "echo b"})
    assert "other:" in (tmp_path / "dvc.lock").read_text()


def test_a_dvc_lock_executor_wrote_while_a_stage_ran_is_put_back(make_repo, executor_cli):
    """`b`'s container was made before dvc.lock existed; it overwrites the one executor
    wrote for `a` meanwhile: `b` fails and executor's file is put back."""
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: sh b.sh\n    outs: [b.txt]\n",
            "b.sh": f"sleep 3\n{FORGED_LOCK}\necho b > b.txt\n",
        }
    )
    done = executor_cli(root, "run", "-j", "2")
    assert done.returncode == 1
    assert "'dvc.lock' was written while stage 'b' ran" in done.stderr, done.stderr
    assert "executor's own was put back" in done.stderr
    lock = (root / "dvc.lock").read_text()
    assert "forged" not in lock and "a.txt" in lock and "b.txt" not in lock


FORGED_LOCK = "printf 'schema: \"2.0\"\\nstages:\\n  forged:\\n    cmd: evil\\n' > dvc.lock"


def test_a_stage_moving_the_folder_of_a_dvc_yaml_away_fails_the_run(make_repo, executor_cli):
    """Only the file is a mount point: its folder can be renamed and a new dvc.yaml put in
    its place. That is seen once the container has stopped."""
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  evil:\n    cmd: sh evil.sh\n    outs: [out.txt]\n",
            "evil.sh": "mv sub sub_old && mkdir sub && echo 'stages: {}' > sub/dvc.yaml\n"
            "echo x > out.txt\n",
            "sub/dvc.yaml": SUB,
        }
    )
    done = executor_cli(root, "run", "evil")
    assert done.returncode == 1
    assert "'sub/dvc.yaml' was written while stage 'evil' ran" in done.stderr, done.stderr
    assert "moved away or replaced" in done.stderr
    assert not (root / "dvc.lock").exists()


@pytest.mark.parametrize("target", ["raw.txt", "rawdir/f.txt"])
def test_a_stage_cannot_change_hardlinked_data_that_dvc_add_tracks(
    make_repo, executor_cli, dvc_cli, target
) -> None:
    root = make_repo(
        {
            "raw.txt": "good\n",
            "rawdir/f.txt": "good\n",
            "dvc.yaml": "stages:\n  use:\n    cmd: cat raw.txt rawdir/f.txt > a.txt\n"
            "    deps: [raw.txt, rawdir]\n    outs: [a.txt]\n"
            f"  evil:\n    cmd: (chmod u+w {target}; echo evil > {target}; chmod 444 {target};"
            " true) && echo e > e.txt\n    outs: [e.txt]\n",
        }
    )
    with_links(root, "hardlink")
    for rel in ("raw.txt", "rawdir"):
        added = dvc_cli(root, "add", rel)
        assert added.returncode == 0, added.stderr
    assert (root / target).stat().st_nlink > 1  # the object itself
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    good = hashlib.md5(b"good\n").hexdigest()
    obj = root / ".dvc/cache/files/md5" / good[:2] / good[2:]
    assert obj.read_bytes() == b"good\n" and (root / target).read_bytes() == b"good\n"


HOST_FILE = "/etc/hostname"  # exists on every host, and its md5 is easy to look for


@pytest.mark.parametrize(
    "dvc_yaml",
    [
        # A stage plants a link to a host file in a folder it depends on: DVC hashes deps
        # again after a run, and that hash happens on the host.
        "stages:\n  a:\n    cmd: ln -s /etc/hostname src/leak && echo a > a.txt\n"
        "    deps: [src]\n    outs: [a.txt]\n",
        # ... or replaces a file dep by such a link.
        "stages:\n  a:\n    cmd: rm src/f && ln -s /etc/hostname src/f && echo a > a.txt\n"
        "    deps: [src/f]\n    outs: [a.txt]\n",
    ],
)
def test_a_link_to_a_host_file_planted_in_a_dep_is_never_followed(
    make_repo, executor_cli, dvc_yaml
) -> None:
    root = make_repo({"dvc.yaml": dvc_yaml, "src/f": "source\n"})
    host_md5 = hashlib.md5(Path(HOST_FILE).read_bytes()).hexdigest()
    done = executor_cli(root, "run")
    assert done.returncode != 0, done.stdout
    assert "outside" in done.stderr and "Traceback" not in done.stderr, done.stderr
    lock = root / "dvc.lock"
    assert not lock.exists() or host_md5 not in lock.read_text()
    assert not list((root / ".dvc/cache").rglob(host_md5[2:]))


def test_a_link_to_a_host_file_in_dvc_added_data_never_reaches_the_cache(
    make_repo, executor_cli, dvc_cli
) -> None:
    """The link is made outside any stage (as a stage of an earlier run could): data that
    `dvc add` tracks is committed before the stage that uses it runs, and must not take the
    host file along."""
    root = make_repo(
        {"data/f": "data\n", "dvc.yaml": "stages:\n  use:\n    cmd: ls data > l.txt\n"
         "    deps: [data]\n    outs: [l.txt]\n"}
    )  # fmt: skip
    assert dvc_cli(root, "add", "data").returncode == 0
    (root / "data/leak").symlink_to(HOST_FILE)
    done = executor_cli(root, "run")
    assert done.returncode == 2, done.stderr
    assert "symlink leading outside the repository" in done.stderr, done.stderr
    host_md5 = hashlib.md5(Path(HOST_FILE).read_bytes()).hexdigest()
    assert not list((root / ".dvc/cache").rglob(host_md5[2:]))
    assert host_md5 not in (root / "data.dvc").read_text()
