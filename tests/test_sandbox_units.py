"""The sandbox's parts that need no engine: limits, image names, argv, logs, a missing engine."""

from __future__ import annotations

import pytest

from executor.errors import ConfigError, SandboxError
from executor.limits import GPUS_ALL, Limits
from worker.sandbox.driver import Invocation, shell_flags
from worker.sandbox.engine import DockerSandbox
from worker.sandbox.logs import TAIL_LINES, LogCollector
from worker.sandbox.request import check_image_name


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"memory": "2g"}, {"memory": 2 << 30}),
        ({"memory": "512m"}, {"memory": 512 << 20}),
        ({"memory": "1.5GiB"}, {"memory": 3 << 29}),
        ({"memory": 64 << 20}, {"memory": 64 << 20}),
        ({"cpus": 1.5, "pids": 512}, {"cpus": 1.5, "pids": 512}),
        ({"cpus": "2"}, {"cpus": 2.0}),
        ({"gpus": 1}, {"gpus": 1}),
        ({"gpus": "all"}, {"gpus": GPUS_ALL}),
        ({"network": True}, {"network": True}),
        ({"timeout": "30m"}, {"timeout": 1800.0}),
        ({"timeout": "1h30m"}, {"timeout": 5400.0}),
        ({"timeout": "90s"}, {"timeout": 90.0}),
        ({"timeout": 2.5}, {"timeout": 2.5}),
        ({"pids": None}, {"pids": None}),
        ({"image": "python:3.11"}, {}),  # not a limit: someone else's key
    ],
)
def test_limits_from_meta(meta, expected):
    limits = Limits.from_meta(meta)
    assert limits == Limits(**{**Limits().to_dict(), **expected})
    assert Limits.from_meta({"executor": meta}) == limits  # a whole stage `meta` works too


def test_meta_overrides_worker_defaults_field_by_field():
    defaults = Limits(memory=1 << 30, cpus=2.0, timeout=60.0)
    limits = Limits.from_meta({"cpus": 0.5}, defaults)
    assert (limits.memory, limits.cpus, limits.timeout, limits.pids) == (1 << 30, 0.5, 60.0, 1024)
    assert Limits.from_meta({}, defaults) == defaults
    assert Limits.from_meta(None, defaults) == defaults


@pytest.mark.parametrize(
    "meta",
    [
        {"memory": "2 gigs"},
        {"memory": -1},
        {"memory": "1k"},  # below Docker's minimum
        {"memory": True},
        {"cpus": -1},
        {"cpus": "abc"},
        {"pids": 1.5},
        {"pids": 0},
        {"gpus": -2},
        {"network": "yes"},
        {"timeout": "abc"},
        {"timeout": 0},
        {"timeout": "5ms"},
    ],
)
def test_bad_limits_name_the_key(meta):
    key = next(iter(meta))
    with pytest.raises(ConfigError, match=rf"^meta\.executor\.{key}: "):
        Limits.from_meta(meta)


def test_limits_round_trip_through_a_dict():
    limits = Limits(memory=1 << 30, cpus=1.5, pids=None, gpus=GPUS_ALL, network=True, timeout=9.0)
    assert Limits.from_dict(limits.to_dict()) == limits
    with pytest.raises(ConfigError, match="unknown key"):
        Limits.from_dict({"memroy": "1g"})


@pytest.mark.parametrize(
    ("shell", "flags"),
    [
        ("/bin/bash", "--noprofile --norc"),
        ("/usr/bin/BASH", "--noprofile --norc"),
        ("zsh", "--no-rcs"),
        ("/usr/bin/fish", "--no-config"),
        ("/bin/sh", ""),
        ("/usr/bin/dash", ""),
    ],
)
def test_shell_flags_follow_dvc(shell, flags):
    assert shell_flags(shell) == flags


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "executor/busybox:1.35.0-4-deb12u1-b1",
        "registry.example.com:5000/team/img:tag",
        "img@sha256:" + "a" * 64,
        "sha256:" + "0" * 64,
        "localhost/a__b.c-d",
    ],
)
def test_good_image_names(image):
    check_image_name(image)


@pytest.mark.parametrize(
    "image",
    ["", "Upper/Case", "img:", "img::tag", "a b", "img:tag:again", "-img", "img@sha256:xyz"],
)
def test_malformed_image_names(image):
    with pytest.raises(ConfigError, match="not a valid image reference"):
        check_image_name(image)


def test_collector_keeps_streams_apart_hides_the_marker_and_bounds_the_tail():
    invocation = Invocation.build("/bin/sh", ("a", "b"))
    seen: list[str] = []
    collector = LogCollector(invocation, seen.append)
    collector.feed(b"partial ", 0)
    collector.feed(f"oops{invocation.marker} 2 3\n".encode(), 1)
    collector.feed(b"line\r\n", 0)
    collector.feed(b"".join(b"%d\n" % i for i in range(50)), 0)
    collector.feed(b"x" * 10_000, 0)
    collector.close()
    assert seen[:2] == ["oops", "partial line"]
    assert collector.failure == (2, 3)
    assert len(collector.tail.splitlines()) == TAIL_LINES
    assert invocation.marker not in collector.tail
    assert max(len(line) for line in seen) <= 8192


def test_collector_ends_only_when_the_end_marker_came_on_both_streams():
    invocation = Invocation.build("/bin/sh", ("a",))
    seen: list[str] = []
    ends: list[bool] = []
    collector = LogCollector(invocation, seen.append, on_end=lambda: ends.append(True))
    collector.feed(f"last, no newline{invocation.marker} E\n".encode(), 0)
    assert not collector.ended and ends == []  # stderr may still hold output
    collector.feed(f"{invocation.marker} E\n".encode(), 1)
    assert collector.ended and ends == [True]
    assert seen == ["last, no newline"]
    order: list[str] = []
    collector = LogCollector(invocation, order.append, on_end=lambda: order.append("END"))
    collector.feed(f"{invocation.marker} E\n".encode(), 1)
    collector.feed(f"done{invocation.marker} E\n".encode(), 0)
    assert order == ["done", "END"]  # the last output is shown before the stage is done
    assert collector.failure is None


def test_from_env_without_an_engine_is_a_clear_sandbox_error(tmp_path):
    host = f"unix://{tmp_path}/no-docker.sock"
    with pytest.raises(SandboxError, match=f"no Docker engine is reachable at {host}"):
        DockerSandbox.from_env({"DOCKER_HOST": host})
