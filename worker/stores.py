"""The stores a worker serves, each opened once per worker process."""

from __future__ import annotations

from executor.settings import Settings
from executor.store.base import ObjectStore
from executor.store.open import open_store

_stores: dict[str, ObjectStore] = {}


def store_for(url: str, settings: Settings) -> ObjectStore:
    """The store at `url`, made once per worker: built in the worker before it forks (see
    `main`), its S3 client (100+ ms to make) is inherited by every work horse. It has made no
    request there, so no connection is shared across the fork."""
    if url not in _stores:
        _stores[url] = open_store(url, settings)
    return _stores[url]
