"""`executor submit --no-commit`, with DVC's meaning: outputs come back to the workspace,
no run-cache entry is written anywhere, and what passed through the fleet's store for the
purpose is removed. Real redis-server, moto_server, an `executor-worker` process, Docker;
`dvc repro --no-commit` is the oracle."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.fleet import Fleet, outputs, submit
from tests.fixtures.s3_server import Bucket
from tests.test_fleet import PIPELINE


def _cached_objects(root: Path) -> list[str]:
    found = []
    for folder, _, names in os.walk(root / ".dvc" / "cache"):
        found += [os.path.join(folder, n) for n in names if "runs" not in folder]
    return found


def test_no_commit_on_the_fleet_leaves_what_dvc_repro_no_commit_leaves(
    make_repo: Callable[..., Path],
    fleet: Fleet,
    busybox_image: str,
    dvc_cli: Any,
    s3_bucket: Bucket,
) -> None:
    ours = make_repo(PIPELINE, "ours")
    theirs = make_repo(PIPELINE, "theirs")
    inputs_before = set(s3_bucket.keys("fleet/"))
    done = submit(ours, fleet, busybox_image, "--no-commit")
    assert done.returncode == 0, done.stdout + done.stderr + fleet.worker_log()
    assert "prepared" in done.stdout
    assert dvc_cli(theirs, "repro", "--no-commit").returncode == 0
    assert (ours / "dvc.lock").read_text() == (theirs / "dvc.lock").read_text()
    assert outputs(ours) == outputs(theirs)
    assert _cached_objects(ours) == _cached_objects(theirs) == []  # nothing committed here
    assert not (ours / ".dvc" / "cache" / "runs").exists()
    left = set(s3_bucket.keys("fleet/")) - inputs_before
    # Only the jobs' inputs were stored (an upstream stage's output is one, as any input,
    # by content): no entry, no record, no scratch store, and no output of the last stage.
    assert all(k.startswith("fleet/files/md5/") for k in left), sorted(left)
    for name in ("model.txt", "scores.json"):
        digest = hashlib.md5((ours / name).read_bytes()).hexdigest()
        assert f"fleet/files/md5/{digest[:2]}/{digest[2:]}" not in left, name
    assert fleet.jobs_run() == 2
    # A later committed submission runs the stages: nothing was recorded to restore from.
    again = submit(ours, fleet, busybox_image)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("Running stage") == 2, again.stdout
    status = dvc_cli(ours, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
