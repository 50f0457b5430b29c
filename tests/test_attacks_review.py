"""Holes found by a security review of issue 10's guarantees (docs/security.md, README), each
tried for real against the Docker engine (and redis-server, the worker and moto for the
fleet). Each test asserts the guarantee and is expected to fail until the hole is closed."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.fleet import Fleet, one_stage, submit
from tests.fixtures.repos import run_cli, write_tree
from tests.fixtures.s3_server import Bucket
from tests.test_fleet_trust import _ended, _queue, _spec, hostile_fleet  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("no_leftover_containers")

# A symlink whose target is an OSC "set window title" sequence (ESC ] 0 ; ... BEL).
ESCAPE_LINK = "ln -s \"$(printf '/x\\033]0;pwned\\007')\" {out}"


def test_escape_sequences_in_an_error_message_reach_the_terminal_made_visible(
    make_repo: Callable[..., Path], executor_cli: Callable[..., object]
) -> None:
    root = make_repo(
        {"dvc.yaml": f"stages:\n  a:\n    cmd: {ESCAPE_LINK.format(out='a.txt')}\n"
                     "    outs: [a.txt]\n"}
    )  # fmt: skip
    done = executor_cli(root, "run", "a")
    assert done.returncode != 0  # type: ignore[attr-defined]
    both = done.stdout + done.stderr  # type: ignore[attr-defined]
    assert "\x1b" not in both and "\x07" not in both, repr(both)


def test_escape_sequences_in_a_workers_error_reach_the_submitter_made_visible(
    make_repo: Callable[..., Path],
    hostile_fleet: Fleet,  # noqa: F811  (the fixture imported above)
    busybox_image: str,
) -> None:
    root = make_repo(one_stage("attack", ESCAPE_LINK.format(out="out.txt")))
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode != 0
    both = done.stdout + done.stderr
    assert "\x1b" not in both and "\x07" not in both, repr(both)


# A stage that plants a file in another stage's dependency folder and hides it from hashing:
# the other stage's command reads it while its run-cache key names the genuine inputs.
HIDERS = {  # how the stage plants, what else the repository holds
    "a new .dvcignore": ("printf 'raw/evil\\n' > data/.dvcignore && echo EVIL > data/raw/evil", {}),
    "a changed .dvcignore": (
        "echo raw/evil >> data/.dvcignore && echo EVIL > data/raw/evil",
        {"data/.dvcignore": "# nothing ignored\n"},
    ),
    "a nested .dvc": ("mkdir -p data/raw/sub/.dvc && echo EVIL > data/raw/sub/evil", {}),
    "a .dvc below the root": ("mkdir -p data/.dvc && echo EVIL > data/raw/evil", {}),
}


@pytest.mark.parametrize(("plant", "files"), HIDERS.values(), ids=HIDERS.keys())
def test_a_stage_cannot_hide_a_planted_dep_file_from_hashing(
    plant: str,
    files: dict[str, str],
    make_repo: Callable[..., Path],
    executor_cli: Callable[..., object],
) -> None:
    dep = "data" if "data/.dvc " in plant else "data/raw"
    data = {"data/raw/good": "good\n", **files}
    root = make_repo(
        {
            "dvc.yaml": f"stages:\n  a:\n    cmd: {plant} && echo a > a.txt\n    outs: [a.txt]\n"
            "  b:\n    cmd: find data -type f -name '[ge]*' | sort | xargs cat > b.txt\n"
            f"    deps: [{dep}, a.txt]\n    outs: [b.txt]\n",
            **data,
        }
    )
    done = executor_cli(root, "run")
    assert done.returncode != 0, done.stdout  # type: ignore[attr-defined]
    assert "no stage may write one" in done.stderr, done.stderr  # type: ignore[attr-defined]
    assert "b:" not in (root / "dvc.lock").read_text()
    assert not (root / "b.txt").exists()
    # The user removes the plant: the run-cache has nothing for b to answer with.
    shutil.rmtree(root / "data")
    write_tree(root, data)
    again = executor_cli(root, "run", "b")
    assert again.returncode == 0, again.stderr  # type: ignore[attr-defined]
    assert (root / "b.txt").read_text() == "good\n"


def test_a_stage_cannot_hide_files_in_its_own_output_from_the_next_stage(
    make_repo: Callable[..., Path], executor_cli: Callable[..., object]
) -> None:
    """The hidden part of an output reaches its consumer, but not its hash: the consumer's
    entry would be keyed on an output that, restored from the cache, lacks it."""
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: mkdir -p out/sub/.dvc && echo EVIL > "
            "out/sub/evil && echo ok > out/ok\n    outs: [out]\n"
            "  b:\n    cmd: cat out/sub/evil > b.txt\n    deps: [out]\n    outs: [b.txt]\n",
        }
    )
    done = executor_cli(root, "run")
    assert done.returncode != 0, done.stdout  # type: ignore[attr-defined]
    assert "out/sub/.dvc" in done.stderr, done.stderr  # type: ignore[attr-defined]
    assert not (root / "b.txt").exists()


def test_a_fleet_stage_cannot_hide_files_in_its_output_from_the_next_stage(
    make_repo: Callable[..., Path],
    hostile_fleet: Fleet,  # noqa: F811  (the fixture imported above)
    busybox_image: str,
) -> None:
    hide = "mkdir -p out/sub/.dvc && echo EVIL > out/sub/evil && echo ok > out/ok"
    root = make_repo(one_stage("hide", hide, out="out"))
    done = submit(root, hostile_fleet, busybox_image)
    assert done.returncode != 0, done.stdout
    assert "no stage may write one" in done.stderr, done.stderr
    assert not (root / "dvc.lock").exists()


A_SH = """\
mkdir outA
for n in 00 01 02 03 04 05 06 07 08 09 10 11; do
  dd if=/dev/zero of=outA/b$n bs=1M count=24 2>/dev/null
done
echo z > outA/z
sleep 1.5
touch a.done
"""
# Stage b runs beside a (-j 2): once a has exited and the host starts reading a's output
# (relatime moves the atime of the big files), it swaps outA/z for a link to a host file.
B_SH = """\
i=0; while [ ! -e a.done ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
t0=$(stat -c %X outA/b*)
i=0; while [ "$(stat -c %X outA/b*)" = "$t0" ] && [ $i -lt 3000 ]; do sleep 0.005; i=$((i+1)); done
ln -s "$SECRET" outA/z.new && mv -f outA/z.new outA/z
echo b > b.txt
"""


def test_a_sibling_stage_cannot_race_the_hashing_into_following_a_link_out(
    make_repo: Callable[..., Path], executor_cli: Callable[..., object], tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-SECRET-BYTES\n")
    leaked: list[Path] = []
    for attempt in range(3):  # a race: the attack won 3 times out of 3 in review
        root = make_repo(
            {
                "dvc.yaml": "stages:\n  a:\n    cmd: sh a.sh\n    deps: [a.sh]\n    outs: [outA]\n"
                "  b:\n    cmd: sh b.sh\n    deps: [b.sh]\n    outs: [b.txt]\n",
                "a.sh": A_SH,
                "b.sh": B_SH,
                ".executor.yaml": f"env: {{SECRET: '{secret}'}}\n",
            },
            f"race{attempt}",
        )
        executor_cli(root, "run", "-j", "2", "a", "b")
        leaked = [
            p
            for p in (root / ".dvc/cache").rglob("*")
            if p.is_file() and b"HOST-SECRET" in p.read_bytes()
        ]
        if leaked:
            break
    assert not leaked, leaked


def _dir_object(files: dict[str, bytes]) -> tuple[str, bytes]:
    from executor.hashing.objects import DirEntry, manifest_bytes

    entries = [DirEntry(n, hashlib.md5(b).hexdigest(), len(b), False) for n, b in files.items()]
    manifest = manifest_bytes(entries)
    return hashlib.md5(manifest).hexdigest() + ".dir", manifest


# Fields of a job spec that DVC's run-cache key does not cover, each forged by a Redis writer
# for a stage whose output shows it: (the victim's dvc.yaml stage, its files, the forgery).
DATA_A = {"a": b"a\n"}
FORGERIES = {
    "empty folders": (
        "cmd: ls data > out.txt\n    deps: [data]", {"data/a": "a\n"},
        {"inputs": [{"path": "data", "md5": _dir_object(DATA_A)[0], "folders": ["EVIL"]}]},
    ),
    "exec bits": (
        "cmd: test -x data/a && echo EVIL > out.txt || echo ok > out.txt\n    deps: [data]",
        {"data/a": "a\n"},
        {"inputs": [{"path": "data", "md5": _dir_object(DATA_A)[0], "executables": ["a"]}]},
    ),
    "DVC_STAGE": (
        "cmd: echo $DVC_STAGE > out.txt\n    deps: [data]", {"data/a": "a\n"},
        {"dvc_stage": "EVIL", "inputs": [{"path": "data", "md5": _dir_object(DATA_A)[0]}]},
    ),
    "a params file's other keys": (
        "cmd: cat params.yaml > out.txt\n    params: [lr]", {"params.yaml": "lr: 1\n"},
        {"params": {"params.yaml": {"lr": 1}},
         "inputs": [{"path": "params.yaml", "md5": hashlib.md5(b"lr: 1\nEVIL: 1\n").hexdigest()}]},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("stage", "files", "forged"), FORGERIES.values(), ids=FORGERIES.keys())
def test_a_redis_writer_cannot_forge_a_cached_output_outside_the_run_cache_key(
    stage: str,
    files: dict[str, str],
    forged: dict[str, object],
    make_repo: Callable[..., Path],
    hostile_fleet: Fleet,  # noqa: F811  (the fixture imported above)
    busybox_image: str,
    s3_bucket: Bucket,
) -> None:
    """The worker runs the forged job and records its output under the victim stage's
    genuine key, image and environment; the victim's submit must not take it as cached."""
    from executor.jobspec import JobSpec, OutRequest
    from executor.settings import Settings
    from executor.store.open import open_store
    from executor.yamlio import load_text

    fleet = hostile_fleet
    victim = make_repo(
        {"dvc.yaml": f"stages:\n  list:\n    {stage}\n    outs: [out.txt]\n", **files}
    )
    definition = load_text((victim / "dvc.yaml").read_text(), "dvc.yaml")["stages"]["list"]
    # The objects the forged job names are in the store (as an earlier submission leaves them).
    store = open_store(fleet.store_url, Settings(s3_endpoint_url=s3_bucket.endpoint))
    for body in (b"a\n", b"lr: 1\nEVIL: 1\n"):
        store.put_bytes(hashlib.md5(body).hexdigest(), body)
    store.put_bytes(*_dir_object(DATA_A))
    deps = tuple(
        {"path": "data", "hash": "md5", "md5": _dir_object(DATA_A)[0], "size": 2, "nfiles": 1}
        for _ in definition.get("deps", [])
    )
    spec = JobSpec(
        address="list", dvc_stage="list", cmd=definition["cmd"], lines=(definition["cmd"],),
        image=busybox_image, wdir=".", deps=deps, params={},
        outs=(OutRequest("out.txt", "out.txt", committed=True),), cacheable=True,
    ).to_dict()  # fmt: skip
    job = _queue(fleet).enqueue("worker.fleet.run_job", {**spec, **forged}, fleet.store_url)
    assert _ended(job, fleet) == "finished", fleet.worker_log()  # the forged run was recorded
    done = submit(victim, fleet, busybox_image)
    assert done.returncode == 0, done.stderr + fleet.worker_log()
    assert "EVIL" not in (victim / "out.txt").read_text(), done.stdout
    assert "cached" not in done.stdout, done.stdout


A_PY = """\
import os
mode = open('mode').read().strip()
if mode == '1':  # rewrite b.sh in place, same size, and put its mtime back to the nanosecond
    st = os.stat('b.sh')
    with open('b.sh', 'r+b') as f:
        f.write(b'echo EVIL')
    os.utime('b.sh', ns=(st.st_atime_ns, st.st_mtime_ns))
open('a.txt', 'w').write(mode)
"""


def test_a_stage_cannot_poison_another_stages_run_cache_entry_through_the_state_cache(
    make_repo: Callable[..., Path], executor_cli: Callable[..., object], python_image: str
) -> None:
    root = make_repo(
        {
            "dvc.yaml": "stages:\n  a:\n    cmd: python3 a.py\n    deps: [a.py, mode]\n"
            f"    outs: [a.txt]\n    meta: {{executor: {{image: {python_image}}}}}\n"
            "  b:\n    cmd: sh b.sh\n    deps: [b.sh, a.txt]\n    outs: [b.txt]\n",
            "b.sh": "echo good > b.txt\n",
            "a.py": A_PY,
            "mode": "0\n",
        }
    )
    old = time.time() - 3600  # a file checked out a while ago: the state cache remembers it
    os.utime(root / "b.sh", (old, old))
    assert executor_cli(root, "run").returncode == 0  # type: ignore[attr-defined]
    (root / "mode").write_text("1\n")  # a now rewrites b.sh unseen
    assert executor_cli(root, "run").returncode == 0  # type: ignore[attr-defined]
    # b.sh back as git has it; b's output gone: the run-cache answers for the genuine b.sh.
    (root / "b.sh").write_text("echo good > b.txt\n")
    (root / "b.txt").unlink()
    assert executor_cli(root, "run", "b").returncode == 0  # type: ignore[attr-defined]
    assert (root / "b.txt").read_text() == "good\n"


# A stage's first move: kill the driver's watchdog (a sibling of this line's shell, same uid),
# which would otherwise stop the stage once the work horse holding its stdin is gone.
KILL_WATCHDOG = (
    'pp=$PPID; for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
    "read -r l < $d/stat || continue; set -- ${l##*) }; "
    '[ "$2" = "$pp" ] && kill -KILL $p; done; '
)


def _started(job: object, fleet: Fleet) -> None:
    deadline = time.monotonic() + 60
    while job.get_status(refresh=True).value != "started":  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, fleet.worker_log()
        time.sleep(0.1)


def _remove_job_containers(docker_client: object, job_id: str) -> None:
    found = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": f"executor.job={job_id}"}
    )
    for container in found:
        container.remove(force=True)


def test_a_stopped_jobs_stage_does_not_outlive_its_timeout(
    hostile_fleet: Fleet,  # noqa: F811  (the fixture imported above)
    busybox_image: str,
    docker_client: object,
) -> None:
    import redis
    from rq.command import send_stop_job_command
    from rq.serializers import JSONSerializer

    from executor.fleet.keys import events_key

    fleet = hostile_fleet
    cmd = KILL_WATCHDOG + "echo watchdog-dead; sleep 120"
    spec = _spec(busybox_image, cmd=cmd, lines=[cmd], deps=[], inputs=[],
                 outs=[{"path": "o", "repo_path": "o"}], executor_meta={"timeout": "5s"})  # fmt: skip
    job = _queue(fleet).enqueue("worker.fleet.run_job", spec, fleet.store_url)
    try:
        _started(job, fleet)
        client = redis.Redis.from_url(fleet.redis_url)
        deadline = time.monotonic() + 60
        while b"watchdog-dead" not in repr(client.xrange(events_key(job.id))).encode():
            assert time.monotonic() < deadline, fleet.worker_log()
            time.sleep(0.1)
        send_stop_job_command(client, job.id, JSONSerializer)
        time.sleep(15)  # 5 s of timeout, 3 s of grace, and some
        running = docker_client.containers.list(  # type: ignore[attr-defined]
            filters={"label": f"executor.job={job.id}"}
        )
        assert not running, fleet.worker_log()
    finally:
        _remove_job_containers(docker_client, job.id)


FLIP_PY = """\
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
pairs = []
for i in range(16):
    for j in range(300):
        os.makedirs(f"d{i}/n{j}")
    os.symlink(os.environ["T"], f"l{i}")
    pairs.append((f"d{i}".encode(), f"l{i}".encode()))
open("ready", "w").close()
while True:  # swap each folder and its link to the host folder, atomically, for ever
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"""


def test_a_killed_jobs_stage_cannot_make_the_worker_chmod_host_folders(
    hostile_fleet: Fleet,  # noqa: F811  (the fixture imported above)
    python_image: str,
    docker_client: object,
    tmp_path: Path,
) -> None:
    import redis
    from rq import Worker
    from rq.command import send_kill_horse_command

    fleet = hostile_fleet
    host = tmp_path / "host-folder"  # think /etc, /usr: names the stage knows
    for j in range(300):
        (host / f"n{j}").mkdir(parents=True)
        os.chmod(host / f"n{j}", 0o755)
    flip = base64.b64encode(FLIP_PY.encode()).decode()
    cmd = KILL_WATCHDOG + f"python3 -c \"import base64; exec(base64.b64decode('{flip}'))\""
    spec = _spec(python_image, cmd=cmd, lines=[cmd], deps=[], inputs=[],
                 outs=[{"path": "o", "repo_path": "o"}], env={"T": str(host)})  # fmt: skip
    job = _queue(fleet).enqueue("worker.fleet.run_job", spec, fleet.store_url)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "worker-home/jobs").glob("*/ws/ready")):
            assert time.monotonic() < deadline, fleet.worker_log()
            time.sleep(0.1)
        time.sleep(1)
        # RQ's kill-horse command (any Redis writer's) is no longer heard: the horse dies
        # as the OOM killer would take it.
        client = redis.Redis.from_url(fleet.redis_url)
        (worker,) = Worker.all(connection=client)
        send_kill_horse_command(client, worker.name)
        horses = subprocess.run(
            ["pgrep", "-P", str(fleet.worker.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        for horse in horses:
            os.kill(int(horse), signal.SIGKILL)
        # The worker reaps the container (unless a parallel test's reaper was first: it is a
        # dead process's), then removes the job's folder, chmodding what it must.
        jobs = tmp_path / "worker-home/jobs"
        deadline = time.monotonic() + 60
        while any(jobs.iterdir()):
            assert time.monotonic() < deadline, fleet.worker_log()
            time.sleep(0.2)
        changed = [p.name for p in host.iterdir() if stat.S_IMODE(p.stat().st_mode) != 0o755]
        assert not changed, f"{len(changed)} host folders chmodded"
    finally:
        _remove_job_containers(docker_client, job.id)


def test_a_stage_cannot_read_the_remotes_keys_in_dvc_config_local(
    make_repo: Callable[..., Path], executor_cli: Callable[..., object]
) -> None:
    root = make_repo(
        {"dvc.yaml": "stages:\n  s:\n    cmd: cat .dvc/config.local > out.txt\n"
                     "    outs: [out.txt]\n"}
    )  # fmt: skip
    (root / ".dvc/config.local").write_text(
        "['remote \"s3\"']\n    access_key_id = AKIAREVIEW\n    secret_access_key = s3cr3t-key\n"
    )
    os.chmod(root / ".dvc/config.local", 0o600)
    executor_cli(root, "run")
    out = root / "out.txt"
    assert not out.exists() or "s3cr3t-key" not in out.read_text()


def test_a_redis_password_in_the_query_string_is_never_printed(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_repo({"dvc.yaml": "stages:\n  s:\n    cmd: echo a > a\n    outs: [a]\n"})
    url = "redis://127.0.0.1:1/0?password=REVIEW-SECRET-PW"  # nobody listens on port 1
    env = {"EXECUTOR_REDIS_URL": url, "EXECUTOR_STORE": str(tmp_path / "store")}
    submitted = run_cli([sys.executable, "-m", "executor", "submit"], root, env)
    worker = run_cli([sys.executable, "-m", "worker", "--dir", str(tmp_path / "worker")], root, env)
    for done in (submitted, worker):
        assert done.returncode != 0
        assert "REVIEW-SECRET-PW" not in done.stdout + done.stderr, done.stderr


# Stage b, beside a (-j 2), swaps the folder above a's output and a link to a host folder,
# atomically and for ever, while executor removes a's output before running a.
RM_FLIP_PY = """\
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("outA/sub", exist_ok=True)
os.symlink(os.environ["X"], "lnk")
end = time.time() + 8
while time.time() < end:
    for _ in range(1000):
        libc.renameat2(-100, b"outA", -100, b"lnk", 2)  # RENAME_EXCHANGE
if os.path.islink("outA"):
    libc.renameat2(-100, b"outA", -100, b"lnk", 2)
open("b.txt", "w").write("b")
"""


def test_a_sibling_stage_cannot_make_executor_delete_a_host_folder(
    make_repo: Callable[..., Path],
    executor_cli: Callable[..., object],
    python_image: str,
    tmp_path: Path,
) -> None:
    flip = base64.b64encode(RM_FLIP_PY.encode()).decode()
    deleted = []
    for attempt in range(6):  # the race won 1 run in 2-8 before the fix
        host = tmp_path / f"host{attempt}"  # think /usr for an output named x/lib
        (host / "sub").mkdir(parents=True)
        (host / "sub/precious").write_text("keep me\n")
        root = make_repo(
            {
                "dvc.yaml": "stages:\n  c:\n    cmd: sleep 1.5 && echo c > c.txt\n    outs: [c.txt]\n"
                "  a:\n    cmd: mkdir -p outA/sub && echo a > outA/sub/f\n    deps: [c.txt]\n"
                "    outs: [outA/sub]\n"
                f"  b:\n    cmd: python3 -c \"import base64; exec(base64.b64decode('{flip}'))\"\n"
                f"    outs: [b.txt]\n    meta: {{executor: {{image: {python_image}, "
                f"env: {{X: '{host}'}}}}}}\n",
            },
            f"rm{attempt}",
        )
        executor_cli(root, "run", "-j", "2")
        if not (host / "sub/precious").exists():
            deleted.append((attempt, host / "sub/precious"))
            break
    assert not deleted, deleted
