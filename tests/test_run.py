"""`executor run` end to end on the real Docker engine with the locally built busybox image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.docker_env import as_host, own_host
from tests.fixtures.repos import GIT_ENV

pytestmark = pytest.mark.usefixtures("no_leftover_containers")

PIPELINE = """\
stages:
  upper:
    cmd: mkdir -p out && tr a-z A-Z < data/in.txt > out/upper.txt
    deps: [data/in.txt]
    params: [prep.factor]
    outs: [out/upper.txt]
  env:
    wdir: sub
    cmd:
      - echo "root=$DVC_ROOT stage=$DVC_STAGE pwd=$(pwd) home=$HOME" > where.txt
    deps: [../data/in.txt]
    outs: [where.txt]
  combine:
    cmd: cat out/upper.txt sub/where.txt > out/combined.txt
    deps: [out/upper.txt, sub/where.txt]
    outs: [out/combined.txt]
"""
FILES = {
    "dvc.yaml": PIPELINE,
    "params.yaml": "prep:\n  factor: 3\n",
    "data/in.txt": "hello\n",
    "sub/.keep": "",
}


def count_runs(output: str) -> int:
    return output.count("Running stage '")


def runs_entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".dvc/cache/runs").rglob("*") if p.is_file())


def test_first_run_executes_every_stage_then_nothing_changes(make_repo, executor_cli) -> None:
    root = make_repo(FILES)
    first = executor_cli(root, "run")
    assert first.returncode == 0, first.stderr
    assert count_runs(first.stdout) == 3
    assert "Generating lock file 'dvc.lock'" in first.stdout
    assert (root / "out/upper.txt").read_text() == "HELLO\n"
    where = (root / "sub/where.txt").read_text()
    assert where == f"root={root} stage=env pwd={root}/sub home=/tmp\n"
    assert (root / "out/upper.txt").stat().st_uid == os.getuid()
    assert len(runs_entries(root)) == 3

    second = executor_cli(root, "run")
    assert second.returncode == 0, second.stderr
    assert count_runs(second.stdout) == 0
    assert "Stage 'upper' didn't change, skipping" in second.stdout
    assert "Data and pipelines are up to date." in second.stdout


def test_deleted_outputs_are_restored_from_the_cache_without_running(make_repo, executor_cli):
    root = make_repo(FILES)
    assert executor_cli(root, "run").returncode == 0
    lock = (root / "dvc.lock").read_bytes()
    for rel in ("out/upper.txt", "out/combined.txt", "sub/where.txt"):
        (root / rel).unlink()
    again = executor_cli(root, "run")
    assert again.returncode == 0, again.stderr
    assert count_runs(again.stdout) == 0
    assert again.stdout.count("is cached - skipping run, checking out outputs") == 3
    assert (root / "out/combined.txt").read_text().startswith("HELLO\n")
    assert (root / "dvc.lock").read_bytes() == lock


def test_changed_input_back_and_forth_hits_the_run_cache(make_repo, executor_cli) -> None:
    root = make_repo(FILES)
    assert executor_cli(root, "run").returncode == 0
    (root / "data/in.txt").write_text("world\n")
    changed = executor_cli(root, "run")
    assert count_runs(changed.stdout) == 3
    (root / "data/in.txt").write_text("hello\n")
    back = executor_cli(root, "run")
    assert back.returncode == 0, back.stderr
    assert count_runs(back.stdout) == 0
    assert (root / "out/upper.txt").read_text() == "HELLO\n"


def test_failing_line_stops_the_stage_and_leaves_nothing_recorded(make_repo, executor_cli):
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n"
                "  bad:\n"
                "    cmd: |\n      echo one > m.txt\n      echo oops >&2\n      false\n      echo never > m.txt\n"
                "    deps: [in.txt]\n    outs: [m.txt]\n"
                "  after:\n    cmd: cp m.txt n.txt\n    deps: [m.txt]\n    outs: [n.txt]\n"
            ),
            "in.txt": "x\n",
        }
    )
    result = executor_cli(root, "run")
    assert result.returncode == 1
    assert "stage 'bad' failed to run: false, exited with 1" in result.stderr
    assert "| oops" in result.stderr
    assert (root / "m.txt").read_text() == "one\n"  # partial output stays, as with DVC
    assert not (root / "dvc.lock").exists()
    assert runs_entries(root) == []
    assert not (root / "n.txt").exists()
    assert count_runs(result.stdout) == 1


def created_containers(client, stage: str, since: float, until: float) -> int:
    """How many containers the engine created for `stage` in the time window (the stage's
    name must be the test's own: tests running in parallel create containers too)."""
    events = client.events(
        since=f"{since:.9f}",
        until=int(until) + 1,
        filters={"type": "container", "event": "create", "label": f"executor.stage={stage}"},
        decode=True,
    )
    return sum(1 for _ in events)


def test_a_next_stage_started_early_never_runs_when_it_turns_out_unchanged(
    make_repo, executor_cli, docker_client
) -> None:
    """`after`'s container starts while `first` runs; first's output does not change, so
    after is skipped and its container removed with its command never run."""
    after = f"after_{uuid.uuid4().hex[:12]}"  # its containers are counted by its name
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n"
                "  first:\n    cmd: head -n 1 in.txt > a.txt\n    deps: [in.txt]\n    outs: [a.txt]\n"
                f"  {after}:\n    cmd: cp a.txt b.txt && echo ran >> ran.log\n"
                "    deps: [a.txt]\n    outs: [b.txt]\n"
            ),
            "in.txt": "kept\nchanged\n",
        }
    )
    assert executor_cli(root, "run").returncode == 0
    (root / "in.txt").write_text("kept\nchanged again\n")
    since = time.time()
    result = executor_cli(root, "run")
    assert result.returncode == 0, result.stderr
    assert count_runs(result.stdout) == 1
    assert f"Stage '{after}' didn't change, skipping" in result.stdout
    assert created_containers(docker_client, after, since, time.time()) == 1  # started early
    assert (root / "ran.log").read_text() == "ran\n"  # ...and never let run


def test_dry_run_executes_nothing(make_repo, executor_cli) -> None:
    root = make_repo(FILES)
    result = executor_cli(root, "run", "--dry")
    assert result.returncode == 0, result.stderr
    assert "Running stage 'upper':" in result.stdout
    assert "> mkdir -p out && tr a-z A-Z < data/in.txt > out/upper.txt" in result.stdout
    assert not (root / "out").exists()
    assert not (root / "dvc.lock").exists()


def test_force_runs_and_no_commit_stores_nothing(make_repo, executor_cli) -> None:
    root = make_repo(FILES)
    result = executor_cli(root, "run", "--no-commit", "upper")
    assert result.returncode == 0, result.stderr
    assert (root / "out/upper.txt").read_text() == "HELLO\n"
    assert runs_entries(root) == []
    assert not list((root / ".dvc/cache").glob("files/md5/*/*"))
    assert executor_cli(root, "run", "upper").stdout.count("Running stage") == 1
    forced = executor_cli(root, "run", "--force", "upper")
    assert count_runs(forced.stdout) == 1


def test_parallel_jobs_run_independent_stages(make_repo, executor_cli) -> None:
    stages = "".join(
        f"  s{i}:\n    cmd: echo {i} > o{i}.txt\n    deps: [in.txt]\n    outs: [o{i}.txt]\n"
        for i in range(4)
    )
    root = make_repo({"dvc.yaml": "stages:\n" + stages, "in.txt": "x\n"})
    result = executor_cli(root, "run", "-j", "4")
    assert result.returncode == 0, result.stderr
    assert [(root / f"o{i}.txt").read_text() for i in range(4)] == [f"{i}\n" for i in range(4)]


def test_stages_needing_no_slot_are_settled_while_every_slot_is_busy(make_repo, executor_cli):
    """With -j 2 and two running stages, a stage whose outputs only need a checkout is restored
    at once, not after a slot frees: the running stages wait for its output to appear."""
    waiter = (
        "    cmd: for i in $(seq 200); do [ -f r.txt ] && break; sleep 0.05; done;"
        " if [ -f r.txt ]; then echo seen; else echo missing; fi > {out}\n"
        "    deps: [in.txt]\n    outs: [{out}]\n"
    )
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n"
                "  s1:\n"
                + waiter.format(out="s1.txt")
                + "  s2:\n"
                + waiter.format(out="s2.txt")
                + "  r:\n    cmd: echo r > r.txt\n    deps: [in.txt]\n    outs: [r.txt]\n"
            ),
            "in.txt": "x\n",
        }
    )
    assert executor_cli(root, "run", "r").returncode == 0
    (root / "r.txt").unlink()
    result = executor_cli(root, "run", "-j", "2")
    assert result.returncode == 0, result.stderr
    assert count_runs(result.stdout) == 2
    assert (root / "s1.txt").read_text() == "seen\n"
    assert (root / "s2.txt").read_text() == "seen\n"


def test_a_stage_whose_wdir_is_an_upstream_output_runs_in_the_new_directory(
    make_repo, executor_cli
) -> None:
    """`results/` is replaced when `make` runs again; `use` (wdir: results) must run in the
    new one, not in a directory held since before (a container started early would)."""
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n"
                "  make:\n    cmd: mkdir results && cp in.txt results/part.txt\n"
                "    deps: [in.txt]\n    outs: [results]\n"
                "  use:\n    wdir: results\n    cmd: cat part.txt > ../used.txt\n"
                "    deps: [part.txt]\n    outs: [../used.txt]\n"
            ),
            "in.txt": "one\n",
        }
    )
    assert executor_cli(root, "run", "-j", "2").returncode == 0
    (root / "in.txt").write_text("two\n")
    result = executor_cli(root, "run", "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "used.txt").read_text() == "two\n"


def test_with_one_job_the_next_stage_is_decided_after_the_one_before_finished(
    make_repo, executor_cli
) -> None:
    """As in dvc repro: `grow` appends to a file `read` depends on without declaring it as an
    output; `read` must see the change (and the messages stay in order)."""
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n"
                "  grow:\n    cmd: echo more >> f.txt\n    deps: [in.txt]\n"
                "    always_changed: true\n"
                "  read:\n    cmd: cp f.txt z.txt\n    deps: [f.txt]\n    outs: [z.txt]\n"
            ),
            "in.txt": "x\n",
            "f.txt": "start\n",
        }
    )
    for _ in range(2):
        result = executor_cli(root, "run")
        assert result.returncode == 0, result.stderr
        assert (root / "z.txt").read_text() == (root / "f.txt").read_text()
    lines = result.stdout.splitlines()
    assert lines.index("Running stage 'grow':") < lines.index("Running stage 'read':")


def test_missing_image_is_a_clear_error_before_anything_changes(make_repo, executor_cli):
    root = make_repo(FILES)
    result = executor_cli(root, "run", env={"EXECUTOR_IMAGE": "executor-test/absent:1"})
    assert result.returncode in (2, 3)
    assert "executor-test/absent:1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (root / "dvc.lock").exists()


def run_until_started(
    root: Path, image: str, grace: float, host: str | None = None
) -> subprocess.Popen[str]:
    """`executor run` in the background, once its stage has printed `started` (its command
    is really running inside the container); on a host name of the test's own if `host`."""
    env = {**os.environ, **GIT_ENV, "EXECUTOR_IMAGE": image, "EXECUTOR_STOP_GRACE": str(grace)}
    argv = [sys.executable, "-m", "executor", "run"]
    if host is not None:
        argv[1:3] = ["-c", as_host(host) + "from executor.cli.app import main\nmain()\n"]
    proc = subprocess.Popen(
        argv,
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            break
    return proc


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_reaches_the_stage_and_stops_the_run(
    make_repo, busybox_image, signum, code
) -> None:
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n  slow:\n"
                "    cmd: trap 'echo interrupted > got.txt; exit 2' INT; echo started; sleep 300 & wait\n"
                "    deps: [in.txt]\n    outs: [never.txt]\n"
                "  next:\n    cmd: echo ran > next.txt\n    deps: [never.txt]\n    outs: [next.txt]\n"
            ),
            "in.txt": "x\n",
        }
    )
    proc = run_until_started(root, busybox_image, grace=3)
    proc.send_signal(signum)
    returned = proc.wait(timeout=30)
    assert returned == code, proc.stderr.read() if proc.stderr else ""
    assert (root / "got.txt").read_text() == "interrupted\n"
    assert not (root / "next.txt").exists()  # its container was started early, then removed
    assert not (root / "dvc.lock").exists()
    assert runs_entries(root) == []


def test_dry_run_needs_no_docker_engine(make_repo, executor_cli, tmp_path) -> None:
    root = make_repo(FILES)
    assert executor_cli(root, "run").returncode == 0
    (root / "data/in.txt").write_text("changed\n")
    nowhere = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    result = executor_cli(root, "run", "--dry", env=nowhere)
    assert result.returncode == 0, result.stderr
    assert "Running stage 'upper':" in result.stdout
    assert "run-cache not checked: no Docker engine is reachable" in result.stdout
    assert (root / "out/upper.txt").read_text() == "HELLO\n"


@pytest.mark.parametrize("layout", ["subdir", "no_scm"])
def test_gitignore_entries_as_dvc_writes_them_for_a_subdir_or_no_scm_project(
    layout: str, tmp_path: Path, executor_cli, dvc_cli
) -> None:
    """`dvc init --subdir`: git's work tree is above the DVC root and DVC still ignores its
    outputs in git; `dvc init --no-scm`: DVC writes no .gitignore, even inside a work tree."""
    roots = []
    for name in ("ours", "theirs"):
        top = tmp_path / name
        top.mkdir()
        subprocess.run(["git", "init", "-q", str(top)], check=True)
        root = top / "proj"
        root.mkdir()
        flag = "--subdir" if layout == "subdir" else "--no-scm"
        assert dvc_cli(root, "init", "-q", flag).returncode == 0
        (root / "in.txt").write_text("x\n")
        (root / "dvc.yaml").write_text(
            "stages:\n  s:\n    cmd: mkdir -p sub && cp in.txt sub/out.txt\n"
            "    deps: [in.txt]\n    outs: [sub/out.txt]\n"
        )
        roots.append(root)
    ours, theirs = roots
    done = executor_cli(ours, "run")
    assert done.returncode == 0, done.stderr
    assert dvc_cli(theirs, "repro").returncode == 0
    for root in roots:
        assert (root / "sub/out.txt").read_text() == "x\n"
    ignores = [
        {p.relative_to(r).as_posix(): p.read_text() for p in r.rglob(".gitignore")
         if ".dvc" not in p.relative_to(r).parts}
        for r in roots
    ]  # fmt: skip
    assert ignores[0] == ignores[1]
    assert bool(ignores[0]) == (layout == "subdir"), ignores[0]


def test_a_running_stage_stops_when_executor_is_killed(
    make_repo, busybox_image, docker_client
) -> None:
    """SIGKILL leaves executor no chance to stop its containers: the stage's own watchdog
    sees the runner gone and stops it, so nothing keeps writing into the workspace."""
    root = make_repo(
        {
            "dvc.yaml": (
                "stages:\n  tick:\n"
                "    cmd: echo started; while :; do echo x >> ticks.txt; sleep 0.1; done\n"
                "    deps: [in.txt]\n    outs: [never.txt]\n"
            ),
            "in.txt": "x\n",
        }
    )
    # Its container outlives it: under a host name of the test's own, no reaper of a test
    # running in parallel removes it while it is watched.
    host = own_host()
    proc = run_until_started(root, busybox_image, grace=2, host=host)
    proc.kill()
    proc.wait(timeout=30)
    label = {"label": f"executor.host={host}"}
    try:
        deadline = time.monotonic() + 60
        while docker_client.containers.list(filters={**label, "status": "running"}):
            assert time.monotonic() < deadline, "the orphaned stage is still running"
            time.sleep(0.1)
        stopped = docker_client.containers.list(all=True, filters=label)
        assert stopped and all(c.status == "exited" for c in stopped)
        # SIGTERM ended it; nothing had to wait for the SIGKILL after the grace.
        assert [c.attrs["State"]["ExitCode"] for c in stopped] == [143]
        assert (root / "ticks.txt").exists()  # it did run until then
    finally:
        for container in docker_client.containers.list(all=True, filters=label):
            container.remove(force=True)


def test_no_image_is_needed_until_a_stage_must_run(make_repo, executor_cli, dvc_cli) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: cp in.txt out.txt\n"
                      "    deps: [in.txt]\n    outs: [out.txt]\n", "in.txt": "x\n"})  # fmt: skip
    assert dvc_cli(root, "repro").returncode == 0  # up to date, by DVC
    no_image = {"EXECUTOR_IMAGE": ""}
    done = executor_cli(root, "run", env=no_image)
    assert done.returncode == 0, done.stderr
    assert "Data and pipelines are up to date." in done.stdout
    (root / "in.txt").write_text("changed\n")
    refused = executor_cli(root, "run", env=no_image)
    assert refused.returncode == 2
    assert "has no container image" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert (root / "out.txt").read_text() == "x\n"


def test_changed_dvc2_data_is_recorded_with_its_dvc3_md5_under_no_commit(
    make_repo, executor_cli
) -> None:
    import hashlib

    old = b"a\r\nb\r\n"
    dos2unix = hashlib.md5(old.replace(b"\r\n", b"\n")).hexdigest()
    root = make_repo(
        {
            "data.csv": "x",
            "data.csv.dvc": f"outs:\n- md5: {dos2unix}\n  size: 6\n  path: data.csv\n",
            "dvc.yaml": "stages:\n  s:\n    cmd: cp data.csv out.txt\n"
            "    deps: [data.csv]\n    outs: [out.txt]\n",
        }
    )
    new = b"c\r\nd\r\n"
    (root / "data.csv").write_bytes(new)
    done = executor_cli(root, "run", "--no-commit")
    assert done.returncode == 0, done.stderr
    assert "Verifying data sources in stage: 'data.csv.dvc'" in done.stdout
    assert (root / "data.csv.dvc").read_text() == (
        f"outs:\n- md5: {hashlib.md5(new).hexdigest()}\n  size: 6\n  path: data.csv\n  hash: md5\n"
    )


def test_a_run_cache_entry_made_with_other_environment_variables_is_not_used(
    make_repo, executor_cli
) -> None:
    """DVC's key knows nothing of `.executor.yaml`'s env; executor's record beside the
    entry does: a seed changed since the entry was made means the stage runs again."""
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: echo $SEED > out.txt\n"
                      "    deps: [in.txt]\n    outs: [out.txt]\n",
                      "in.txt": "a\n", ".executor.yaml": "env: {SEED: '1'}\n"})  # fmt: skip
    assert executor_cli(root, "run").returncode == 0
    (root / "in.txt").write_text("b\n")
    assert executor_cli(root, "run").returncode == 0
    (root / ".executor.yaml").write_text("env: {SEED: '2'}\n")
    (root / "in.txt").write_text("a\n")  # back to inputs the run-cache has an entry for
    done = executor_cli(root, "run")
    assert done.returncode == 0, done.stderr
    assert "Running stage 's'" in done.stdout, done.stdout
    assert (root / "out.txt").read_text() == "2\n"
    (root / ".executor.yaml").write_text("env: {SEED: '1'}\n")
    (root / "in.txt").write_text("b\n")
    done = executor_cli(root, "run")  # the first environment's entry still serves it
    assert "is cached - skipping run" in done.stdout, done.stdout
    assert (root / "out.txt").read_text() == "1\n"
