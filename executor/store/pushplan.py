"""What a push must upload in one object layout: the objects the store lacks, asked in
batches, where a `.dir` object in the store stands for all of its files and the previous
version of a changed directory (DirHints) for the files the two share."""

from __future__ import annotations

from dataclasses import dataclass

from executor.errors import CorruptObject, ObjectMissing
from executor.hashing.objects import parse_manifest
from executor.store.base import ObjectStore
from executor.store.hints import DirHints
from executor.store.local import LocalStore
from executor.store.pool import Progress
from executor.store.tracked import Tracked


@dataclass
class PushPlan:
    """The objects of one push, by what is to be done with them."""

    files: set[str]  # file objects to upload: the store lacks them, the cache has them
    dirs: dict[str, set[str]]  # `.dir` objects to upload after their files -> those files
    present: set[str]  # objects the store has (asked, or known from a previous version)
    failed: dict[str, str]  # object -> why it cannot be pushed


def plan_push(
    cache: LocalStore,
    store: ObjectStore,
    outputs: list[Tracked],
    wanted: set[str],
    hints: DirHints,
    progress: Progress,
) -> PushPlan:
    """Which of the `wanted` objects (and the files of their `.dir` objects) to upload."""
    progress.start("checking the store", len(wanted))
    present = store.exists_many(wanted)
    progress.advance(len(wanted))
    failed: dict[str, str] = {}
    dirs: dict[str, set[str]] = {}
    for md5 in sorted(m for m in wanted - present if m.endswith(".dir")):
        try:
            dirs[md5] = _manifest(cache, md5)
        except (ObjectMissing, CorruptObject, ValueError, KeyError) as exc:
            failed[md5] = f"{md5} not usable in the local cache: {exc}"
    files = {m for m in wanted if not m.endswith(".dir")}.union(*dirs.values())
    known = _known_files(cache, store, outputs, dirs, hints)
    present |= known & files
    present |= store.exists_many(files - wanted - known)  # `wanted` was asked about already
    todo = files - present
    for md5 in todo - cache.exists_many(todo):
        failed[md5] = f"object {md5} is missing from the local cache {cache.root}"
    return PushPlan(todo - failed.keys(), dirs, present, failed)


def _manifest(cache: LocalStore, md5: str) -> set[str]:
    return {m for _, m in parse_manifest(cache.get_bytes(md5))}


def _known_files(
    cache: LocalStore,
    store: ObjectStore,
    outputs: list[Tracked],
    changed: dict[str, set[str]],
    hints: DirHints,
) -> set[str]:
    """Files known to be in the store because a previous version of their directory is."""
    before = {hints.previous(o.path) for o in outputs if o.md5 in changed} - {None}
    candidates = {m for m in before if m is not None and cache.exists(m)}
    known: set[str] = set()
    for md5 in store.exists_many(candidates):
        try:
            known |= _manifest(cache, md5)
        except (ObjectMissing, CorruptObject, ValueError, KeyError):
            continue
    return known
