"""`executor submit --no-commit`: a stage's outputs come home through its job's scratch
store (store.scratch) and land in the workspace only, as `dvc repro --no-commit` leaves
them: not in the local cache, no run-cache entry here or on the fleet; the scratch store of
every job the stage took is emptied afterwards, whatever happened."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from executor.coordinator.outputs import checkout_entry
from executor.errors import RemoteError
from executor.runcache import out_objects
from executor.store.local import LocalStore
from executor.store.movers import fetch_objects
from executor.store.open import open_store
from executor.store.scratch import scratch_url
from executor.workspace import Workspace


def land_uncommitted(
    ws: Workspace, store_url: str, job_id: str, *, wdir: str, outs: list[Mapping[str, Any]],
    cached: Mapping[str, bool],
) -> None:  # fmt: skip
    """Check out a job's outputs from its scratch store, through a temporary cache that is
    removed afterwards."""
    scratch = open_store(scratch_url(store_url, job_id), ws.settings, base=ws.root)
    staging = LocalStore(ws.root / ".dvc" / "tmp" / "executor" / f"uncommitted-{uuid.uuid4().hex}")
    try:
        needed = out_objects(scratch, [dict(o) for o in outs])
        if needed is None:
            raise RemoteError("a directory's manifest is missing from the job's scratch store")
        failed: dict[str, str] = {}
        fetch_objects(
            scratch, staging, sorted(needed), max(1, ws.settings.transfer_workers), failed
        )
        if failed:
            raise RemoteError(
                "outputs could not be fetched from the job's scratch store: "
                + "; ".join(sorted(failed.values())[:3])
            )
        checkout_entry(staging.copying(), ws.root, ws.hasher, wdir=wdir, outs=outs, cached=cached)
    finally:
        scratch.close()
        shutil.rmtree(staging.root, ignore_errors=True)


def remove_scratch(ws: Workspace, store_url: str, job_ids: Iterable[str]) -> None:
    """Empty the scratch store of each job."""
    for job_id in job_ids:
        scratch = open_store(scratch_url(store_url, job_id), ws.settings, base=ws.root)
        try:
            scratch.remove_all()
        finally:
            scratch.close()
