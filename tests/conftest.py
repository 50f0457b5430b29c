"""Shared fixtures. Each service lives in its own plugin module under tests/fixtures/.

Services are real: the machine's Docker engine with locally built images and moto's S3
server process on 127.0.0.1. Under CI=true a missing service fails the
run; elsewhere the test is skipped with a message naming what is missing.
"""

pytest_plugins = [
    "tests.fixtures.docker_env",
    "tests.fixtures.s3_server",
    "tests.fixtures.repos",
]
