"""DVC as the oracle for `executor run`'s options and settings, and the shared vectors.

Each test builds its own small repositories: `dvc` runs in one (on a thread, as it costs a
second), `executor` in the other, and what they print and leave behind is compared.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repos import run_cli
from tests.oracle_projects import (
    CHAIN_AND_BRANCH,
    LEGACY,
    NONDETERMINISTIC,
    PROJECTS,
    Project,
    build,
    containers_using,
    lock_files,
    run_entries,
    stage_lines,
    workspace,
)

Proc = subprocess.CompletedProcess[str]
SPEC = Path(__file__).resolve().parent / "data" / "dvc-vectors"


class Tools:
    """`dvc` (started in the background) and `executor` with the test image."""

    def __init__(self, image: str, dvc_bin: str) -> None:
        self.image, self.dvc_bin = image, dvc_bin
        self.pool = ThreadPoolExecutor(max_workers=2)

    def dvc_now(self, root: Path, *args: str) -> Proc:
        return run_cli([self.dvc_bin, *args], root, {"SHELL": "/bin/sh"})

    def dvc(self, root: Path, *args: str) -> Future[Proc]:
        return self.pool.submit(self.dvc_now, root, *args)

    def executor(self, root: Path, *args: str) -> Proc:
        argv = [sys.executable, "-m", "executor", *args]
        return run_cli(argv, root, {"EXECUTOR_IMAGE": self.image})


@pytest.fixture()
def tools(
    busybox_image: str,
    dvc_bin: str,
    no_leftover_containers: None,
    docker_client: Any,
    tmp_path: Path,
) -> Iterator[Tools]:
    found = Tools(busybox_image, dvc_bin)
    yield found
    found.pool.shutdown(wait=True)
    assert containers_using(docker_client, tmp_path) == []


def remove(root: Path, rel: str) -> None:
    path = root / rel
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def ok(result: Proc) -> Proc:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_parallel_jobs_write_dvc_lock_in_dvc_order(tools: Tools, tmp_path: Path) -> None:
    """x -> y -> a is a chain and b is independent: DVC records x, y, a, b; with two jobs
    b finishes while y and a still wait, yet dvc.lock must not depend on timing."""
    theirs = build(tmp_path / "dvc", CHAIN_AND_BRANCH)
    ours = build(tmp_path / "executor", CHAIN_AND_BRANCH)
    expected = tools.dvc(theirs, "repro")
    ok(tools.executor(ours, "run", "-j", "2"))
    ok(expected.result())
    assert lock_files(ours) == lock_files(theirs)


def run_in_sub(tools: Tools, base: Path) -> tuple[Path, Proc, Path, Proc]:
    """several_dvcyaml run with target `use` from `sub/` by DVC and by executor."""
    theirs = build(base / "dvc", PROJECTS["several_dvcyaml"])
    ours = build(base / "executor", PROJECTS["several_dvcyaml"])
    expected = tools.dvc(theirs / "sub", "repro", "use")
    result = ok(tools.executor(ours / "sub", "run", "use"))
    return theirs, ok(expected.result()), ours, result


def test_no_targets_runs_what_dvc_repro_runs_in_that_folder(tools: Tools, tmp_path: Path) -> None:
    """`dvc repro` without targets means `./dvc.yaml` (in the current folder) and what it
    needs; stages of other dvc.yaml files downstream of it are left alone."""
    theirs = build(tmp_path / "dvc", PROJECTS["several_dvcyaml"])
    ours = build(tmp_path / "executor", PROJECTS["several_dvcyaml"])
    expected = tools.dvc(theirs, "repro")
    result = ok(tools.executor(ours, "run"))
    assert stage_lines(ok(expected.result()).stdout, "ran") == {"prep"}
    assert stage_lines(result.stdout, "ran") == {"prep"}
    assert lock_files(ours) == lock_files(theirs)


def test_targets_are_resolved_from_the_current_directory(tools: Tools, tmp_path: Path) -> None:
    """In `sub/`, `use` names sub/dvc.yaml's stage (DVC_STAGE of its upstream is then
    `../dvc.yaml:prep`, which the stage writes into its output)."""
    theirs, _, ours, _ = run_in_sub(tools, tmp_path)
    assert lock_files(ours) == lock_files(theirs)
    assert workspace(ours) == workspace(theirs)


def test_stage_addresses_are_printed_from_the_current_directory(
    tools: Tools, tmp_path: Path
) -> None:
    _, expected, _, result = run_in_sub(tools, tmp_path)
    assert stage_lines(expected.stdout, "ran") == {"../dvc.yaml:prep", "use"}
    assert stage_lines(result.stdout, "ran") == stage_lines(expected.stdout, "ran")


def test_allow_missing_skips_outputs_not_in_the_cache(tools: Tools, tmp_path: Path) -> None:
    """After `--no-commit`, every output is "not in cache"; `--allow-missing` accepts that
    (DVC's Stage.changed_outs), so nothing runs."""
    theirs = build(tmp_path / "dvc", CHAIN_AND_BRANCH)
    ours = build(tmp_path / "executor", CHAIN_AND_BRANCH)
    first = tools.dvc(theirs, "repro", "--no-commit")
    ok(tools.executor(ours, "run", "--no-commit"))
    ok(first.result())
    second = tools.dvc(theirs, "repro", "--allow-missing")
    result = ok(tools.executor(ours, "run", "--allow-missing"))
    assert stage_lines(ok(second.result()).stdout, "ran") == set()
    assert stage_lines(result.stdout, "ran") == set()
    assert lock_files(ours) == lock_files(theirs)


FROZEN_CHAIN = Project(
    features=("a frozen stage in a chain",),
    files={
        "in.txt": "x\n",
        "dvc.yaml": """\
stages:
  a:
    cmd: cp in.txt a.txt
    deps: [in.txt]
    outs: [a.txt]
  b:
    cmd: cp a.txt b.txt
    deps: [a.txt]
    outs: [b.txt]
    frozen: true
  c:
    cmd: cp b.txt c.txt
    deps: [b.txt]
    outs: [c.txt]
""",
    },
)


def test_allow_missing_in_a_clone_without_outputs_skips_a_frozen_stage_too(
    tools: Tools, tmp_path: Path
) -> None:
    """A fresh clone (dvc.lock, no outputs, no cache): DVC's --allow-missing skips every stage,
    the frozen one included, where a plain run would verify its missing output and fail."""
    first = build(tmp_path / "first", FROZEN_CHAIN)
    frozen = (first / "dvc.yaml").read_text()
    (first / "dvc.yaml").write_text(frozen.replace("    frozen: true\n", ""))
    ok(tools.dvc(first, "repro").result())
    (first / "dvc.yaml").write_text(frozen)  # as `dvc freeze b` leaves it
    for name in ("a.txt", "b.txt", "c.txt"):
        (first / name).unlink()
    shutil.rmtree(first / ".dvc" / "cache")
    theirs = shutil.copytree(first, tmp_path / "dvc", symlinks=True)
    ours = shutil.copytree(first, tmp_path / "executor", symlinks=True)
    expected = tools.dvc(theirs, "repro", "--allow-missing")
    result = ok(tools.executor(ours, "run", "--allow-missing"))
    assert stage_lines(ok(expected.result()).stdout, "ran") == set()
    assert stage_lines(result.stdout, "ran") == set()
    assert lock_files(ours) == lock_files(theirs) == lock_files(first)
    assert not (ours / "b.txt").exists()


def test_executor_honours_a_cache_dir_set_in_dvc_config(tools: Tools, tmp_path: Path) -> None:
    """`cache.dir` names the cache a first `dvc repro` filled: DVC restores every stage from
    it in a fresh copy, and so must executor (else the two stop sharing the user's cache)."""
    first = build(tmp_path / "first", CHAIN_AND_BRANCH)
    ok(tools.dvc(first, "repro").result())
    config = f"[cache]\n    dir = {first / '.dvc' / 'cache'}\n"
    theirs = build(tmp_path / "dvc", CHAIN_AND_BRANCH)
    ours = build(tmp_path / "executor", CHAIN_AND_BRANCH)
    for root in (theirs, ours):
        with open(root / ".dvc" / "config", "a") as f:
            f.write(config)
    expected = tools.dvc(theirs, "repro")
    result = ok(tools.executor(ours, "run"))
    assert stage_lines(ok(expected.result()).stdout, "ran") == set()
    assert stage_lines(result.stdout, "ran") == set()
    assert not (ours / ".dvc" / "cache").exists()


def test_a_writable_object_that_does_not_match_its_name_is_not_restored(
    tools: Tools, tmp_path: Path
) -> None:
    """DVC trusts read-only (protected) objects but hashes writable ones before a restore
    (dvc-data's check); a corrupt one means no hit, so the stage runs again."""
    first = build(tmp_path / "first", LEGACY)
    ok(tools.dvc(first, "repro").result())
    md5 = hashlib.md5((first / "both" / "all.dat").read_bytes()).hexdigest()
    copies = [shutil.copytree(first, tmp_path / tool, symlinks=True) for tool in ("dvc", "ex")]
    for root in copies:
        for rel in ("dvc.lock", "text.txt", "both"):
            remove(root, rel)
        obj = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        obj.chmod(0o644)
        obj.write_bytes(b"garbage")
    expected = tools.dvc(copies[0], "repro")
    result = ok(tools.executor(copies[1], "run"))
    assert stage_lines(ok(expected.result()).stdout, "ran") == {"both"}
    assert stage_lines(result.stdout, "ran") == {"both"}
    assert workspace(copies[1]) == workspace(copies[0])


def test_frozen_warning_is_printed_as_dvc_prints_it(tools: Tools, tmp_path: Path) -> None:
    """A second run over an up-to-date frozen stage: DVC warns on stderr."""
    theirs = build(tmp_path / "dvc", PROJECTS["frozen"])
    ours = build(tmp_path / "executor", PROJECTS["frozen"])
    first = tools.dvc(theirs, "repro")
    ok(tools.executor(ours, "run"))
    ok(first.result())
    expected = tools.dvc(theirs, "repro")
    result = ok(tools.executor(ours, "run"))
    warning = "WARNING: stage: 'frozen' is frozen. Its dependencies are not going to be reproduced."
    assert warning in ok(expected.result()).stderr.splitlines()
    assert warning in result.stderr.splitlines()
    assert "frozen. Its dependencies" not in result.stdout


def forced_runs(run: Callable[[Path], Proc], root: Path) -> Path:
    """`run` forced four times, hidden.txt one, two, three, two: the last run's entry
    already exists, so it is not written again and `three` stays the newest."""
    for value in ("one", "two", "three", "two"):
        (root / "hidden.txt").write_text(f"{value}\n")
        ok(run(root))
    return root


def test_newest_run_cache_entry_wins_both_ways(tools: Tools, tmp_path: Path) -> None:
    theirs = build(tmp_path / "dvc", NONDETERMINISTIC)
    ours = build(tmp_path / "executor", NONDETERMINISTIC)
    dvc_side = tools.pool.submit(
        forced_runs, lambda root: tools.dvc_now(root, "repro", "--force"), theirs
    )
    forced_runs(lambda root: tools.executor(root, "run", "--force"), ours)
    dvc_side.result()
    assert run_entries(ours) == run_entries(theirs)
    assert len(run_entries(ours)) == 3

    for src, label in ((theirs, "executor-restores"), (ours, "dvc-restores")):
        dest = shutil.copytree(src, tmp_path / label, symlinks=True)
        (dest / "dvc.lock").unlink()
        (dest / "out.txt").unlink()
    restored_by_dvc = tools.dvc(tmp_path / "dvc-restores", "repro")
    result = ok(tools.executor(tmp_path / "executor-restores", "run"))
    assert stage_lines(result.stdout, "cached") == {"nd"}
    assert stage_lines(ok(restored_by_dvc.result()).stdout, "cached") == {"nd"}
    assert (tmp_path / "executor-restores" / "out.txt").read_text() == "x\nthree\n"
    assert (tmp_path / "dvc-restores" / "out.txt").read_text() == "x\nthree\n"


def as_dvc2(root: Path, crlf: dict[str, bytes]) -> None:
    """Turn a DVC 3 result into what DVC 2 left: lock entries without `hash: md5` (so read
    as md5-dos2unix), CRLF deps recorded by their dos2unix md5, objects directly
    under the cache root, no run entries (their keys were computed differently)."""
    lock = (root / "dvc.lock").read_text()
    lock = "".join(line for line in lock.splitlines(True) if line.strip() != "hash: md5")
    for content in crlf.values():
        dos2unix = hashlib.md5(content.replace(b"\r\n", b"\n")).hexdigest()
        lock = lock.replace(hashlib.md5(content).hexdigest(), dos2unix)
    (root / "dvc.lock").write_text(lock)
    cache = root / ".dvc" / "cache"
    for folder in (cache / "files" / "md5").iterdir():
        folder.rename(cache / folder.name)
    shutil.rmtree(cache / "files")
    shutil.rmtree(cache / "runs")
    shutil.rmtree(root / ".dvc" / "tmp")


def test_dvc2_lock_entries_are_read_as_dos2unix_and_left_alone(
    tools: Tools, tmp_path: Path
) -> None:
    """A repository last run by DVC 2: DVC 3 finds nothing changed and keeps the entries
    (a 2.x entry becomes 3.x only when its content changes); so must executor."""
    first = build(tmp_path / "first", LEGACY)
    ok(tools.dvc(first, "repro").result())
    as_dvc2(first, {"crlf.txt": bytes(LEGACY.files["crlf.txt"])})  # type: ignore[arg-type]
    assert ok(tools.dvc(first, "status").result()).stdout.strip() == (
        "Data and pipelines are up to date."
    )
    theirs = shutil.copytree(first, tmp_path / "dvc", symlinks=True)
    ours = shutil.copytree(first, tmp_path / "executor", symlinks=True)
    expected = tools.dvc(theirs, "repro")
    result = ok(tools.executor(ours, "run"))
    assert stage_lines(ok(expected.result()).stdout, "ran") == set()
    assert stage_lines(result.stdout, "ran") == set()
    assert lock_files(ours) == lock_files(theirs) == lock_files(first)
    assert workspace(ours) == workspace(theirs)
    assert run_entries(ours) == run_entries(theirs)


LEGACY_COPY = Project(
    features=(*LEGACY.features, "a CRLF text output"),
    files={
        **LEGACY.files,
        "dvc.yaml": str(LEGACY.files["dvc.yaml"])
        + "  copy:\n    cmd: cp crlf.txt copy.txt\n    deps: [crlf.txt]\n    outs: [copy.txt]\n",
    },
)


def test_dvc2_outputs_deleted_are_checked_out_from_the_legacy_cache(
    tools: Tools, tmp_path: Path
) -> None:
    """DVC 3 restores a 2.x entry's deleted outputs from the 2.x objects (`<cache>/<xx>/...`,
    named by md5-dos2unix) and keeps dvc.lock as it is: nothing runs again."""
    first = build(tmp_path / "first", LEGACY_COPY)
    ok(tools.dvc(first, "repro").result())
    crlf = bytes(LEGACY.files["crlf.txt"])  # type: ignore[arg-type]
    as_dvc2(first, {"crlf.txt": crlf})
    plain, dos2unix = (hashlib.md5(c).hexdigest() for c in (crlf, crlf.replace(b"\r\n", b"\n")))
    cache = first / ".dvc" / "cache"
    (cache / dos2unix[:2]).mkdir(exist_ok=True)
    (cache / plain[:2] / plain[2:]).rename(cache / dos2unix[:2] / dos2unix[2:])
    for out in ("text.txt", "copy.txt"):
        (first / out).unlink()
    shutil.rmtree(first / "both")
    theirs = shutil.copytree(first, tmp_path / "dvc", symlinks=True)
    ours = shutil.copytree(first, tmp_path / "executor", symlinks=True)
    expected = tools.dvc(theirs, "repro")
    result = ok(tools.executor(ours, "run"))
    assert stage_lines(ok(expected.result()).stdout, "cached") == {"text", "both", "copy"}
    assert stage_lines(result.stdout, "cached") == {"text", "both", "copy"}
    assert lock_files(ours) == lock_files(theirs) == lock_files(first)
    assert workspace(ours) == workspace(theirs)
    assert (ours / "copy.txt").read_bytes() == crlf
    assert ok(tools.dvc(ours, "status").result()).stdout.strip() == (
        "Data and pipelines are up to date."
    )


def test_vectors_fixture_lock_is_rebuilt_from_its_run_cache(tools: Tools, tmp_path: Path) -> None:
    """The DVC-built fixture without its dvc.lock and outputs: executor restores all three
    stages from the fixture's run-cache and writes DVC's dvc.lock byte for byte."""
    root = tmp_path / "fixture"
    shutil.copytree(SPEC / "fixture", root, symlinks=True)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    for ignore in root.rglob("_gitignore"):
        ignore.rename(ignore.with_name(".gitignore"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    expected_lock = (root / "dvc.lock").read_bytes()
    expected_outs = workspace(root / "out")
    expected_runs = run_entries(root)
    (root / "dvc.lock").unlink()
    shutil.rmtree(root / "out")

    result = ok(tools.executor(root, "run"))
    assert "Running stage" not in result.stdout
    for stage in ("upper", "listing", "combine"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in result.stdout
    assert (root / "dvc.lock").read_bytes() == expected_lock
    assert workspace(root / "out") == expected_outs
    assert run_entries(root) == expected_runs
    assert (root / "scripts" / "combine.sh").stat().st_mode & 0o111


DATA_SOURCES = Project(
    features=("stages depending on `dvc add` data",),
    files={
        "raw/1.txt": "1\n",
        "raw/2.txt": "2\n",
        "one.txt": "solo\n",
        "dvc.yaml": """\
stages:
  s:
    cmd: ls raw > out.txt && cat one.txt raw/1.txt >> out.txt
    deps: [raw/1.txt, raw, one.txt]
    outs: [out.txt]
""",
    },
)


def source_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if ".dvc'" in line]


def cache_files(root: Path) -> list[str]:
    objects = root / ".dvc" / "cache" / "files"
    return sorted(p.relative_to(objects).as_posix() for p in objects.rglob("*") if p.is_file())


def test_changed_dvc_add_data_is_committed_before_the_stages_as_dvc_repro_does(
    tools: Tools, tmp_path: Path
) -> None:
    """A stage depends on data tracked by `dvc add`: when the data changed, `dvc repro`
    commits it and updates its .dvc file before running the stage; unchanged, it says so."""
    first = build(tmp_path / "first", DATA_SOURCES)
    ok(tools.dvc(first, "add", "-q", "raw", "one.txt").result())
    ok(tools.dvc(first, "repro").result())
    for changed in ("raw/3.txt", "one.txt"):
        (first / changed).write_text("new\n")
    theirs = shutil.copytree(first, tmp_path / "dvc", symlinks=True)
    ours = shutil.copytree(first, tmp_path / "executor", symlinks=True)
    expected = ok(tools.dvc(theirs, "repro").result())
    result = ok(tools.executor(ours, "run"))
    assert (
        source_lines(result.stdout)
        == source_lines(expected.stdout)
        == [
            "Verifying data sources in stage: 'raw.dvc'",
            "Verifying data sources in stage: 'one.txt.dvc'",
        ]
    )
    for name in ("raw.dvc", "one.txt.dvc", "dvc.lock"):
        assert (ours / name).read_text() == (theirs / name).read_text(), name
    assert cache_files(ours) == cache_files(theirs)
    assert workspace(ours) == workspace(theirs)
    assert "up to date" in ok(tools.dvc(ours, "status").result()).stdout

    again = ok(tools.executor(ours, "run"))
    expected = ok(tools.dvc(theirs, "repro").result())
    assert (
        source_lines(again.stdout)
        == source_lines(expected.stdout)
        == [
            "'raw.dvc' didn't change, skipping",
            "'one.txt.dvc' didn't change, skipping",
        ]
    )


def test_dvc_add_data_behind_a_frozen_stage_is_left_alone_as_dvc_repro_leaves_it(
    tools: Tools, tmp_path: Path
) -> None:
    first = build(tmp_path / "first", DATA_SOURCES)
    ok(tools.dvc(first, "add", "-q", "raw", "one.txt").result())
    ok(tools.dvc(first, "repro").result())
    (first / "dvc.yaml").write_text((first / "dvc.yaml").read_text() + "    frozen: true\n")
    (first / "one.txt").write_text("new\n")
    theirs = shutil.copytree(first, tmp_path / "dvc", symlinks=True)
    ours = shutil.copytree(first, tmp_path / "executor", symlinks=True)
    expected = ok(tools.dvc(theirs, "repro").result())
    result = ok(tools.executor(ours, "run"))
    assert source_lines(result.stdout) == source_lines(expected.stdout) == []
    for name in ("raw.dvc", "one.txt.dvc", "dvc.lock"):
        assert (
            (ours / name).read_text() == (theirs / name).read_text() == (first / name).read_text()
        ), name
