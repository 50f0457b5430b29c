"""Shared fixtures. Each service lives in its own plugin module under tests/fixtures/.

Services are real: the machine's Docker engine with locally built images, moto's S3 server
process (and s3s-fs, a second S3 implementation, for the tests parametrized over both) and
redis-server on 127.0.0.1. Under CI=true a missing service fails the run; elsewhere the
test is skipped with a message naming what is missing.
"""

import os
import shutil
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


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_ISOLATED, ""), ignore_errors=True)
