"""Attacks on detached fleet runs (`executor submit --detach`, `executor runs/status/logs/
cancel/fetch`) by a Redis writer (not trusted: docs/security.md) and by a stage's code. Run
ids, stage addresses, templates, stage states and job->run bindings in Redis are all the
attacker's. Real redis-server, moto_server, `executor-worker` processes and Docker.

Each weakness the review found is fixed; its test asserts the safe behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from executor.fleet.keys import JOB_FUNCTION, events_key
from executor.fleet.runs import RUNS_KEY, job_run_key, run_key, stages_key, templates_key
from executor.jobspec import JobSpec
from executor.runcache import RunCache, env_digest
from executor.store.local import LocalStore
from tests.fixtures.fleet import Fleet
from tests.fixtures.repos import GIT_ENV, run_cli
from tests.test_fleet_detached import cli, detach, ended, run_status, wait_for

TWO = {
    "dvc.yaml": """\
stages:
  A:
    cmd: cat in.txt > a.txt
    deps: [in.txt]
    outs: [a.txt]
  B:
    cmd: cat a.txt > b.txt
    deps: [a.txt]
    outs: [b.txt]
""",
    "in.txt": "good\n",
}

# A first stage slow enough for a Redis writer to change what comes after it.
SLOW = {
    "dvc.yaml": """\
stages:
  A:
    cmd: sleep 4; cat in.txt > a.txt
    deps: [in.txt]
    outs: [a.txt]
  B:
    cmd: cat a.txt > b.txt; echo "x$MSG" >> b.txt
    deps: [a.txt]
    outs: [b.txt]
""",
    "in.txt": "good\n",
}

ONE = {
    "dvc.yaml": """\
stages:
  S:
    cmd: echo "x$MSG" > out.txt
    deps: [in.txt]
    outs: [out.txt]
""",
    "in.txt": "x\n",
}

FORGED_RUN = "20250101-000000-abcdef"


def _client(url: str) -> Any:
    return redis.Redis.from_url(url)


def _succeeded(root: Path, fleet: Fleet, run_id: str) -> dict[str, Any]:
    doc = wait_for(root, fleet, run_id, ended)
    assert doc["run"]["state"] == "succeeded", json.dumps(doc, indent=1) + fleet.worker_log()
    return doc


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _set_stage(client: Any, run_id: str, address: str, doc: dict[str, Any]) -> None:
    client.hset(stages_key(run_id), address, json.dumps(doc))


def _template(client: Any, run_id: str, address: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(client.hget(templates_key(run_id), address))
    return value


def _forge_run(
    client: Any,
    run_id: str,
    stages: dict[str, Any],
    *,
    order: list[str] | None = None,
    **info: Any,
) -> None:
    """A run record as a Redis writer leaves it (stage values: dicts or raw strings)."""
    doc = {
        "id": run_id, "user": "u", "host": "h", "repo": "/r", "created": time.time(),
        "store_url": "", "order": list(stages) if order is None else order, "waits": {},
        "state": "running", **info,
    }  # fmt: skip
    client.hset(run_key(run_id), "info", json.dumps(doc))
    for address, state in stages.items():
        raw = state if isinstance(state, (str, bytes)) else json.dumps(state)
        client.hset(stages_key(run_id), address, raw)
    client.zadd(RUNS_KEY, {run_id: time.time()})


def _redis_cli(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        [sys.executable, "-m", "executor", *args], tmp_path, {"EXECUTOR_REDIS_URL": redis_url}
    )


# --- fetch: what it checks out must be confirmed by the fleet's own store ------------------


def test_fetch_does_not_take_the_store_from_the_run_record(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    """The attacker cannot write to the fleet's store, but can make one of its own (a
    folder here; an `s3://...?endpoint_url=` of its own elsewhere), with a record of a
    'worker run' of the victim's stage that made its chosen bytes, and name it in the run."""
    root = make_repo(ONE)
    run_id = detach(root, fleet, busybox_image)
    doc = _succeeded(root, fleet, run_id)
    client = _client(fleet.redis_url)
    spec = JobSpec.from_dict(_template(client, run_id, "S")["spec"])
    stage = doc["stages"]["S"]
    evil = b"evil\n"
    md5 = hashlib.md5(evil).hexdigest()
    entry = json.loads(json.dumps(stage["result"]["entry"]))
    entry["outs"][0].update(md5=md5, size=len(evil))
    own = LocalStore(tmp_path / "attackers-store")
    own.put_bytes(md5, evil)
    RunCache(own).save(
        entry,
        image=spec.image,
        image_digest=stage["result"]["image_digest"],
        env=env_digest(spec.env),
        layout=spec.layout(),
    )
    _set_stage(client, run_id, "S", {**stage, "result": {**stage["result"], "entry": entry}})
    info = json.loads(client.hget(run_key(run_id), "info"))
    info["store_url"] = str(tmp_path / "attackers-store")
    client.hset(run_key(run_id), "info", json.dumps(info))
    fetched = cli(root, fleet, "fetch", run_id)
    assert _text(root / "out.txt") != "evil\n", fetched.stdout + fetched.stderr
    assert fetched.returncode != 0, fetched.stdout + fetched.stderr


def _victim_and_attacker(
    make_repo: Callable[..., Path], fleet: Fleet, image: str
) -> tuple[Path, str, dict[str, Any]]:
    """The attacker's own, honest run of the victim's pipeline on other data (the store
    now records genuine worker runs of its stages on that data), and the victim's run."""
    attacker = make_repo({**TWO, "in.txt": "evil\n"}, "attacker")
    theirs = _succeeded(attacker, fleet, detach(attacker, fleet, image))
    victim = make_repo(TWO, "victim")
    run_id = detach(victim, fleet, image)
    _succeeded(victim, fleet, run_id)
    return victim, run_id, theirs


def test_a_forged_skipped_upstream_does_not_make_fetch_land_another_runs_result(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """Stage A is forged 'skipped' with the attacker's A entry (unchecked: fetch lands
    nothing for a skipped stage); stage B then 'ran' on the attacker's a.txt, and the
    store does record that run of B: fetch checked out b.txt made from 'evil'."""
    victim, run_id, theirs = _victim_and_attacker(make_repo, fleet, busybox_image)
    client = _client(fleet.redis_url)
    their_a = theirs["stages"]["A"]["result"]["entry"]
    _set_stage(client, run_id, "A", {"state": "skipped", "result": {"entry": their_a}})
    their_b = {k: v for k, v in theirs["stages"]["B"].items() if k != "where"}
    _set_stage(client, run_id, "B", their_b)
    fetched = cli(victim, fleet, "fetch", run_id)
    assert _text(victim / "b.txt") != "evil\n", fetched.stdout + fetched.stderr
    assert fetched.returncode != 0


def test_a_forged_restored_result_is_refused_by_fetch(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """Stage A forged 'restored' with the attacker's genuine A entry (made on other data):
    the fleet's run-cache has no such entry for the victim's inputs; nothing lands."""
    victim, run_id, theirs = _victim_and_attacker(make_repo, fleet, busybox_image)
    client = _client(fleet.redis_url)
    result = theirs["stages"]["A"]["result"]
    forged = {"entry": result["entry"], "image_digest": result["image_digest"]}
    _set_stage(client, run_id, "A", {"state": "restored", "result": forged})
    fetched = cli(victim, fleet, "fetch", run_id)
    assert fetched.returncode == 3, fetched.stdout + fetched.stderr
    assert "not confirmed by the fleet's store" in fetched.stderr
    assert not (victim / "a.txt").exists() and not (victim / "b.txt").exists()
    assert not (victim / "dvc.lock").exists()


def test_fetch_refuses_a_stage_run_with_an_environment_from_a_tampered_template(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """While A runs, the Redis writer adds MSG=evil to B's template; the worker fills it
    in and runs B with it; the store records that run with that env, which fetch then
    compares with the same tampered template."""
    root = make_repo(SLOW)
    run_id = detach(root, fleet, busybox_image)
    client = _client(fleet.redis_url)
    template = _template(client, run_id, "B")
    template["spec"]["env"] = {**template["spec"]["env"], "MSG": "evil"}
    client.hset(templates_key(run_id), "B", json.dumps(template))
    assert run_status(root, fleet, run_id)["stages"]["B"]["state"] == "waiting"  # in time
    _succeeded(root, fleet, run_id)
    fetched = cli(root, fleet, "fetch", run_id)
    assert "xevil" not in _text(root / "b.txt"), fetched.stdout + fetched.stderr
    assert fetched.returncode != 0


def test_a_forged_job_binding_runs_within_the_sandbox_but_fetch_refuses_its_result(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str
) -> None:
    """The Redis writer enqueues its own job (the victim's spec, with MSG=evil), binds it
    to the victim's finished stage (`executor:job:<id>:run`) and makes it the stage's job.
    The worker runs it (any Redis writer can have jobs run) and records 'ran' in the
    victim's stage; fetch finds no worker run of that entry with the submitted env."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    root = make_repo(ONE)
    run_id = detach(root, fleet, busybox_image)
    _succeeded(root, fleet, run_id)
    client = _client(fleet.redis_url)
    spec = _template(client, run_id, "S")["spec"]
    spec["env"] = {**spec["env"], "MSG": "evil"}
    job_id = f"executor-{uuid.uuid4().hex}"
    _set_stage(client, run_id, "S", {"state": "queued", "job": job_id, "queue": "default"})
    client.set(job_run_key(job_id), f"{run_id}\tS")
    Queue("default", connection=client, serializer=JSONSerializer).enqueue(
        JOB_FUNCTION, spec, fleet.store_url, job_id=job_id, job_timeout=-1
    )
    doc = wait_for(root, fleet, run_id, lambda d: d["stages"]["S"]["state"] not in ("queued",))
    doc = wait_for(root, fleet, run_id, lambda d: d["stages"]["S"]["state"] != "running")
    assert doc["stages"]["S"]["state"] == "ran" and doc["stages"]["S"]["job"] == job_id, doc
    fetched = cli(root, fleet, "fetch", run_id)
    assert fetched.returncode == 3, fetched.stdout + fetched.stderr
    assert "not confirmed by the fleet's store" in fetched.stderr
    assert not (root / "out.txt").exists()


def test_a_forged_kept_result_does_not_land_a_stale_stage(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, dvc_cli: Any
) -> None:
    """After a first run is fetched, in.txt changes and the pipeline is submitted again:
    A and B run. B is then forged 'restored, kept' with its old dvc.lock entry: fetch
    landed the new a.txt but the old b.txt, reported success, and `dvc status` says B
    changed."""
    root = make_repo(TWO)
    first = detach(root, fleet, busybox_image)
    old = _succeeded(root, fleet, first)["stages"]["B"]["result"]["entry"]
    assert cli(root, fleet, "fetch", first).returncode == 0
    (root / "in.txt").write_text("new\n")
    second = detach(root, fleet, busybox_image)
    assert _succeeded(root, fleet, second)["stages"]["B"]["state"] == "ran"
    client = _client(fleet.redis_url)
    kept = {"entry": old, "image_digest": "", "kept": True}
    _set_stage(client, second, "B", {"state": "restored", "result": kept})
    fetched = cli(root, fleet, "fetch", second)
    if fetched.returncode == 0:  # then it must be what `dvc repro` leaves
        assert (root / "b.txt").read_text() == "new\n"
        status = dvc_cli(root, "status")
        assert "Data and pipelines are up to date." in status.stdout, status.stdout


# --- workers: crafted records and templates ------------------------------------------------


def test_malformed_run_records_and_forged_bindings_do_not_stop_a_worker(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    """Jobs bound to runs whose records are not JSON, whose stage states make the Lua
    compare-and-set fail (a null state), hold wrong types, or to another run's stage whose
    job is not theirs, and one whose spec places an input outside its workspace (as a
    template's `sources` can make `fill` do): each fails or is refused, nothing is written
    outside, the worker serves on, and the honest run's record is untouched."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    honest = make_repo(ONE, "honest")
    run_id = detach(honest, fleet, busybox_image)
    before = _succeeded(honest, fleet, run_id)["stages"]["S"]
    client = _client(fleet.redis_url)
    spec = _template(client, run_id, "S")["spec"]
    queue = Queue("default", connection=client, serializer=JSONSerializer)
    crafted: list[tuple[str, str, Any, Any]] = [  # run id, address, info, stage state
        ("20250101-000000-00000a", "S", "{not json", None),
        ("20250101-000000-00000b", "S", None, '{"state": null, "job": "%s"}'),
        ("20250101-000000-00000c", "S", None, '{"state": "queued", "job": "%s", '
         '"attempts": "x", "started": "y", "result": [1]}'),
        ("20250101-000000-00000d", "S", None, '[1, 2]'),
        ("20250101-000000-00000e", "\x1b[2Jnone", None, None),
        (run_id, "S", "honest", None),  # the honest run's stage: its job is not this one
    ]  # fmt: skip
    for forged_run, address, info, state in crafted:
        job_id = f"executor-{uuid.uuid4().hex}"
        if info is None:
            _forge_run(client, forged_run, {}, order=[address])
        elif info != "honest":
            client.hset(run_key(forged_run), "info", info)
        if state is not None:
            raw = state % job_id if "%s" in state else state
            client.hset(stages_key(forged_run), address, raw)
        client.set(job_run_key(job_id), f"{forged_run}\t{address}")
        queue.enqueue(JOB_FUNCTION, spec, fleet.store_url, job_id=job_id, job_timeout=-1)
    outside = tmp_path / "outside"
    outside.mkdir()
    escaping = {**spec, "inputs": [
        *spec["inputs"],
        {"path": "../" * 40 + str(outside / "pwned").lstrip("/"),
         "md5": spec["inputs"][0]["md5"]},
    ]}  # fmt: skip
    job_id = f"executor-{uuid.uuid4().hex}"
    _forge_run(client, "20250101-000000-00000f", {"S": {"state": "queued", "job": job_id}})
    client.set(job_run_key(job_id), "20250101-000000-00000f\tS")
    queue.enqueue(JOB_FUNCTION, escaping, fleet.store_url, job_id=job_id, job_timeout=-1)
    again = make_repo(ONE, "again")
    assert _succeeded(again, fleet, detach(again, fleet, busybox_image, "--force"))
    assert fleet.worker.poll() is None, fleet.worker_log()
    assert queue.count == 0
    assert run_status(honest, fleet, run_id)["stages"]["S"] == {**before, "where": "-"}
    assert "unhandled exception" not in fleet.worker_log()
    assert "'inputs.path' escapes the workspace" in fleet.worker_log()
    assert list(outside.iterdir()) == []


def test_a_template_whose_source_escapes_the_workspace_fails_its_stage(
    make_repo: Callable[..., Path], fleet: Fleet, busybox_image: str, tmp_path: Path
) -> None:
    """`fill` builds the downstream stage's inputs from the template's `sources` without
    JobSpec's checks: a source dep at '../../..' asks the worker to place A's output
    outside its workspace. The worker refuses the job (nothing is written outside: see
    the test above); the stage must then fail and the run end."""
    root = make_repo(SLOW)
    run_id = detach(root, fleet, busybox_image)
    client = _client(fleet.redis_url)
    outside = tmp_path / "outside"
    outside.mkdir()
    escape = "../" * 40 + str(outside / "pwned").lstrip("/")
    template = _template(client, run_id, "B")
    template["sources"] = {escape: ["A", "a.txt"]}
    template["deps"] = [escape]
    client.hset(templates_key(run_id), "B", json.dumps(template))
    doc = wait_for(root, fleet, run_id, ended, timeout=90)
    assert list(outside.iterdir()) == []
    assert doc["stages"]["A"]["state"] == "ran", doc
    assert doc["stages"]["B"]["state"] == "failed", doc
    assert fleet.worker.poll() is None


# --- run ids and names from Redis on the submitter's side ----------------------------------


def test_run_ids_with_path_characters_are_never_used(
    make_repo: Callable[..., Path], redis_url: str, tmp_path: Path
) -> None:
    """`fetch` writes `.dvc/tmp/executor/runs/<run_id>.json`: a run id from the command line
    or the listing that climbs out is refused; a record whose own id is not its key's (a
    real run id's) is refused too, and left out of the listing."""
    client = _client(redis_url)
    root = make_repo(ONE)
    bad = "../../../../" + str(tmp_path / "pwned").lstrip("/")
    store = str(tmp_path / "store")
    _forge_run(client, bad, {}, state="succeeded", store_url=store, ended=time.time())
    _forge_run(client, FORGED_RUN, {}, state="succeeded", store_url=store, ended=time.time())
    info = json.loads(client.hget(run_key(FORGED_RUN), "info"))
    client.hset(run_key(FORGED_RUN), "info", json.dumps({**info, "id": bad}))
    env = {"EXECUTOR_REDIS_URL": redis_url}
    listed = run_cli([sys.executable, "-m", "executor", "runs", "--json"], root, env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []  # neither record is listed
    for command in ("fetch", "status", "cancel", "logs"):
        done = run_cli([sys.executable, "-m", "executor", command, bad], root, env)
        assert done.returncode == 2 and "is not a run id" in done.stderr, done.stderr
    fetched = run_cli([sys.executable, "-m", "executor", "fetch", FORGED_RUN], root, env)
    assert fetched.returncode == 2, fetched.stdout + fetched.stderr
    assert "its record names another run" in fetched.stderr
    assert not list(tmp_path.glob("pwned*"))
    assert not any("pwned" in p.name for p in tmp_path.rglob("*"))


def test_crafted_runs_do_not_break_the_runs_listing(redis_url: str, tmp_path: Path) -> None:
    client = _client(redis_url)
    _forge_run(client, FORGED_RUN, {"S": {"state": "ran"}})
    _forge_run(client, "20250101-000000-bbbbbb", {"S": {"state": ["ran"]}})
    client.zadd(RUNS_KEY, {b"\xff\xfe": time.time() + 10})
    for args in (("runs",), ("runs", "--json"), ("status", "20250101-000000-bbbbbb")):
        done = _redis_cli(tmp_path, redis_url, *args)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 0, done.stderr
    listed = _redis_cli(tmp_path, redis_url, "runs")
    assert FORGED_RUN in listed.stdout


def test_stage_names_from_redis_cannot_inject_control_sequences(
    redis_url: str, tmp_path: Path
) -> None:
    client = _client(redis_url)
    name = "\x1b]0;PWNED\x1b\\\x1b[2Js"
    job_id = f"executor-{uuid.uuid4().hex}"
    _forge_run(client, FORGED_RUN, {name: {"state": "waiting", "job": job_id}})
    client.xadd(events_key(job_id), {"t": "log", "v": "hello"})
    client.xadd(events_key(job_id), {"t": "end", "v": "{}"})
    logs = _redis_cli(tmp_path, redis_url, "logs", FORGED_RUN)
    assert logs.returncode == 0 and "hello" in logs.stdout, logs.stderr
    cancelled = _redis_cli(tmp_path, redis_url, "cancel", FORGED_RUN)
    assert cancelled.returncode == 0, cancelled.stderr
    for done in (logs, cancelled):
        assert "\x1b" not in done.stdout + done.stderr, repr(done.stdout)


def test_status_on_a_terminal_makes_the_runs_facts_visible(redis_url: str, tmp_path: Path) -> None:
    client = _client(redis_url)
    _forge_run(
        client, FORGED_RUN, {"S": {"state": "ran"}}, user="\x1b]0;PWNED\x1b\\",
        host="\x1b[2J", repo="[link=https://example.com]r[/link]",
    )  # fmt: skip
    main, other = pty.openpty()
    env = {**os.environ, **GIT_ENV, "EXECUTOR_REDIS_URL": redis_url, "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "executor", "status", FORGED_RUN],
        cwd=tmp_path, env=env, stdin=other, stdout=other, stderr=other,
    )  # fmt: skip
    os.close(other)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(main)
    assert proc.returncode == 0, out
    assert b"stage" in out, out
    assert b"\x1b]0;" not in out and b"\x1b[2J" not in out and b"\x1b]8;" not in out, out
