"""Objects between this repository and the fleet's store: a stage's inputs put in before its
job is enqueued, its outputs fetched into the local cache after; what this submission knows
the store has is not sent again."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from executor.coordinator.inputs import describe_inputs
from executor.errors import RemoteError, StageCancelled
from executor.jobspec import Input, JobSpec
from executor.runcache import out_objects
from executor.store.base import ObjectStore
from executor.store.movers import fetch_objects, put_objects
from executor.workspace import Workspace


class FleetObjects:
    """Moves the objects of a submission's stages to and from the fleet's store."""

    def __init__(self, ws: Workspace, store: ObjectStore) -> None:
        self.ws = ws
        self.store = store
        self._stored: set[str] = set()  # objects known to be in the store, this submission
        self.jobs = max(1, ws.settings.transfer_workers)

    def push_inputs(
        self, spec: JobSpec, cancel: threading.Event, skip: frozenset[str] = frozenset()
    ) -> tuple[Input, ...]:
        """Put every input's objects the store lacks into it (but those at `skip`: see
        describe_inputs); the inputs by content."""
        described = describe_inputs(spec, self.ws.root, self.ws.hasher, skip)
        files, manifests = described.files, described.manifests
        needed = set(files) | set(manifests)
        present = (needed & self._stored) | self.store.exists_many(needed - self._stored)

        def stop_if_cancelled() -> None:
            if cancel.is_set():
                raise StageCancelled(spec.address)

        failed: dict[str, str] = {}
        todo = [m for m in files if m not in present]
        put_objects(
            self.store, files.__getitem__, todo, self.jobs, failed, before=stop_if_cancelled
        )
        if failed:
            raise RemoteError(
                f"stage '{spec.address}': inputs could not be stored in the fleet's store: "
                + "; ".join(sorted(failed.values())[:3])
            )
        for md5, data in manifests.items():  # a `.dir` after its files, as DVC pushes them
            if md5 not in present:
                self.store.put_bytes(md5, data, check=False)
        self._stored.update(needed)
        return described.inputs

    def fetch(self, outs: Iterable[Mapping[str, Any]]) -> None:
        """Bring the objects of these lock items from the store into the local cache."""
        cache = self.ws.store
        needed = out_objects(self.store, [dict(o) for o in outs])
        if needed is None:
            raise RemoteError("a directory's manifest is missing from the fleet's store")
        missing = set(needed) - cache.exists_many(set(needed))
        failed: dict[str, str] = {}
        fetch_objects(self.store, cache, sorted(missing), self.jobs, failed)
        if failed:
            raise RemoteError(
                "outputs could not be fetched from the fleet's store: "
                + "; ".join(sorted(failed.values())[:3])
            )
        self._stored.update(needed)  # an upstream output is often a downstream input
