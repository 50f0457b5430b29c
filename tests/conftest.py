"""Shared fixtures. Each service lives in its own plugin module under tests/fixtures/.

Services are real: the machine's Docker engine with locally built images, moto's S3 server
process (and s3s-fs, a second S3 implementation, for the tests parametrized over both) and
redis-server on 127.0.0.1. Under CI=true a missing service fails the run; elsewhere the
test is skipped with a message naming what is missing.
"""

import os
import shutil
import signal
import tempfile

import pytest

pytest_plugins = [
    "tests.fixtures.docker_env",
    "tests.fixtures.s3_server",
    "tests.fixtures.s3s_server",
    "tests.fixtures.redis_server",
    "tests.fixtures.repos",
    "tests.fixtures.fleet",
    "tests.fixtures.container_fleet",
]
_ISOLATED = pytest.StashKey[str]()

# scripts/test runs the suite in parallel (pytest-xdist, --dist loadfile --no-loadscope-reorder):
# each file goes whole to one worker process, in the order collected. The longest files come
# first, so that none of them starts last and runs on alone while the other workers are idle;
# the rest keep their order. Longest first by the seconds their tests took (setup, call and
# teardown summed per file, from `--junitxml` of a parallel run; see docs/testing.md).
LONGEST_FILES_FIRST = (
    "test_fleet_containers.py",  # ~420 s with the worker, Redis and s3s-fs images built
    "test_fleet.py",  # 327 s
    "test_attacks_review.py",  # 198 s
    "test_fidelity_runner.py",  # 196 s
    "test_dvc_oracle_cli.py",  # 154 s
    "test_attacks_review4.py",  # 136 s
    "test_attacks_review2.py",  # 123 s
    "test_fleet_trust.py",  # 121 s
    "test_fleet_detached_faults.py",  # 118 s, one test 72 s
    "test_bench_smoke.py",  # 115 s, one test
    "test_dvc_oracle.py",  # 112 s
    "test_sandbox_trust.py",  # 100 s
    "test_run.py",  # 81 s
    "test_deploy_compose.py",  # ~100 s
    "test_example.py",  # 73 s, one test
    "test_fidelity_runner_bad_input.py",  # 68 s
    "test_cache_links.py",  # 60 s
)


def pytest_configure(config: pytest.Config) -> None:
    """DVC's machine-wide config levels (a developer's default remote or cache.dir) must not
    reach the tests: DVC and executor both read these folders, left empty here."""
    isolated = tempfile.mkdtemp(prefix="executor-tests-dvc-config-")
    config.stash[_ISOLATED] = isolated
    os.environ["DVC_GLOBAL_CONFIG_DIR"] = os.path.join(isolated, "global")
    os.environ["DVC_SYSTEM_CONFIG_DIR"] = os.path.join(isolated, "system")
    # As root (CI machines, this sandbox) the test repositories are root's: their stages may
    # run as root with no capability. tests/test_sandbox_trust.py checks the default refusal.
    if os.getuid() == 0:
        os.environ.setdefault("EXECUTOR_ALLOW_ROOT_STAGES", "1")
    # Tests Ctrl-C the `executor` processes they start. A command started with `&` by a shell
    # without job control (a script, a CI step) ignores SIGINT, and so would every process it
    # starts, pytest-xdist's workers and their `executor` children included.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_ISOLATED, ""), ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of LONGEST_FILES_FIRST first, in its order; each file's tests keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
