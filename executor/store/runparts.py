"""The run-cache half of a store: run-cache entries and executor's records beside them.

Each store keeps them in a part of its own (`LocalRuns` in a folder, `S3Runs` in a bucket);
`RunsFromPart` gives a store the ObjectStore methods for them by handing each call on."""

from __future__ import annotations

from typing import Protocol

from executor.store.base import RunFile


class RunsPart(Protocol):
    """Where a store keeps its run-cache entries and records."""

    def list_runs(self, key: str) -> list[RunFile]: ...
    def read_run(self, key: str, value: str) -> bytes | None: ...
    def write_run(self, key: str, value: str, data: bytes) -> None: ...
    def read_record(self, key: str, value: str) -> bytes | None: ...
    def write_record(self, key: str, value: str, data: bytes) -> None: ...
    def all_runs(self) -> dict[str, list[RunFile]]: ...
    def all_records(self) -> set[tuple[str, str]]: ...


class RunsFromPart:
    """ObjectStore's run-cache methods, answered by the store's `_runs` part."""

    _runs: RunsPart

    def list_runs(self, key: str) -> list[RunFile]:
        return self._runs.list_runs(key)

    def read_run(self, key: str, value: str) -> bytes | None:
        return self._runs.read_run(key, value)

    def write_run(self, key: str, value: str, data: bytes) -> None:
        self._runs.write_run(key, value, data)

    def read_record(self, key: str, value: str) -> bytes | None:
        return self._runs.read_record(key, value)

    def write_record(self, key: str, value: str, data: bytes) -> None:
        self._runs.write_record(key, value, data)

    def all_runs(self) -> dict[str, list[RunFile]]:
        return self._runs.all_runs()

    def all_records(self) -> set[tuple[str, str]]:
        return self._runs.all_records()
