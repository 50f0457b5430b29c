"""What a stage needs, decided from hashes alone: skip, restore, or run, and why.

Dep hashes come from upstream results when the dep is an upstream output (keys before bytes),
otherwise from the workspace through the state cache, so unchanged files are never re-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executor.confine import inside
from executor.dvcformat.entry import Entry, lock_item, stage_key
from executor.errors import WorkspaceError
from executor.hashing.hasher import Hasher
from executor.pipeline.model import Stage
from executor.runcache import objects_usable, out_objects
from executor.store.base import ObjectStore


@dataclass
class Evaluation:
    """A stage compared with its dvc.lock entry."""

    stage: Stage
    deps: list[dict[str, Any]]  # current lock items (paths relative to wdir)
    params: dict[str, dict[str, Any]]
    recorded: Entry | None
    reasons: list[str] = field(default_factory=list)  # why it must run; [] when unchanged
    missing_outs: list[str] = field(default_factory=list)
    changed_outs: list[str] = field(default_factory=list)  # modified in the workspace
    uncached_outs: list[str] = field(default_factory=list)  # as recorded, but not in the cache

    @property
    def outs_only(self) -> bool:
        """Inputs unchanged; only outputs differ (deleted, modified or not in the cache)."""
        return not self.reasons and bool(
            self.missing_outs or self.changed_outs or self.uncached_outs
        )

    @property
    def cmd(self) -> str | list[str]:
        return self.stage.lock_cmd

    def why(self) -> str:
        """The reasons in one line, for `--dry`."""
        parts = list(self.reasons)
        parts += [f"out '{p}' deleted" for p in self.missing_outs]
        parts += [f"out '{p}' modified" for p in self.changed_outs]
        parts += [f"out '{p}' not in the cache" for p in self.uncached_outs]
        return "; ".join(parts) or "nothing changed"

    def key(self) -> str:
        """The run-cache key: DVC's, from cmd, dep hashes, params and out paths."""
        return stage_key(self.cmd, self.deps, self.params, [o.path for o in self.stage.outs])


def _recorded_items(entry: Entry | None, part: str) -> dict[str, Mapping[str, Any]]:
    if not entry:
        return {}
    return {str(item["path"]): item for item in entry.get(part, []) if isinstance(item, Mapping)}


def hash_deps(
    root: Path,
    stage: Stage,
    hasher: Hasher,
    known: Mapping[str, Mapping[str, Any]],
    recorded: Entry | None = None,
) -> list[dict[str, Any]]:
    """Current lock items of the stage's deps; `known` maps repo paths to upstream out items.

    With `recorded` (dvc.lock's entry, under --allow-missing) a deleted dep counts as it was
    recorded, as DVC accepts a "deleted" dep then.
    """
    allowed = _recorded_items(recorded, "deps")
    items = []
    for dep in stage.deps:
        repo_path = stage.repo_path(dep)
        upstream = known.get(repo_path)
        if upstream is not None:
            item = {k: v for k, v in upstream.items() if k != "path"}
            items.append({"path": dep, **item})
            continue
        path = inside(root, repo_path)
        if not path.exists() and dep in allowed:
            items.append(dict(allowed[dep]))
            continue
        if not path.exists():
            raise WorkspaceError(
                f"stage '{stage.address}': dependency '{dep}' does not exist"
                f" ({repo_path}); create it or add the stage that produces it"
            )
        try:
            info = hasher.hash_path(path)
        except WorkspaceError as exc:  # a FIFO or socket, a .dvcignore inside: name the stage
            raise WorkspaceError(f"stage '{stage.address}': dependency '{dep}': {exc}") from None
        items.append(lock_item(dep, info))
    return items


def evaluate(
    root: Path,
    stage: Stage,
    deps: list[dict[str, Any]],
    params: dict[str, dict[str, Any]],
    recorded: Entry | None,
    hasher: Hasher,
    store: ObjectStore,
) -> Evaluation:
    """Compare the stage's current inputs and outputs with its dvc.lock entry.

    An output whose content is not in the cache counts as changed ("not in cache"), as in
    DVC, so `--no-commit` results are committed by the next run.
    """
    ev = Evaluation(stage, deps, params, recorded)
    if recorded is None:
        ev.reasons.append("no dvc.lock entry")
        return ev
    if recorded.get("cmd") != stage.lock_cmd:
        ev.reasons.append("command changed")
    old_deps = _recorded_items(recorded, "deps")
    for item in deps:
        old = old_deps.get(item["path"])
        if old is None:
            ev.reasons.append(f"dep '{item['path']}' is new")
        elif old.get("md5") != _current_md5(root, stage, item, old, hasher):
            ev.reasons.append(f"dep '{item['path']}' changed")
    for path in old_deps.keys() - {item["path"] for item in deps}:
        ev.reasons.append(f"dep '{path}' removed")
    if (recorded.get("params") or {}) != params:
        ev.reasons.append("params changed")
    old_outs = _recorded_items(recorded, "outs")
    if set(old_outs) - {out.path for out in stage.outs}:
        ev.reasons.append("outs changed")
    if stage.frozen:
        pass  # DVC's changed_deps is False for a frozen stage, always_changed or not
    elif stage.always_changed:
        ev.reasons.append("always changed")
    elif not (stage.deps or stage.params or stage.outs):
        ev.reasons.append("a callback stage (no deps, no outs) always runs")
    if ev.reasons:
        return ev  # it runs anyway: outputs are not read just to be deleted
    for out in stage.outs:
        old = old_outs.get(out.path)
        out_path = inside(root, stage.repo_path(out.path))
        if old is None:
            ev.reasons.append(f"out '{out.path}' is new")
        elif not out_path.exists():
            ev.missing_outs.append(out.path)
        elif _current_md5(root, stage, {"path": out.path}, old, hasher) != old.get("md5"):
            ev.changed_outs.append(out.path)
        elif out.cache and not in_cache(store, old):
            # Only outputs DVC caches count ("not in cache"); a cache: false metric does not.
            ev.uncached_outs.append(out.path)
    return ev


def _current_md5(
    root: Path, stage: Stage, item: Mapping[str, Any], old: Mapping[str, Any], hasher: Hasher
) -> str:
    """The md5 to compare with a recorded item: as recorded by DVC 3 (`hash: md5`), or the
    2.x md5-dos2unix for entries DVC 2 wrote, which DVC 3 keeps until their content changes."""
    if "hash" in old:
        if "md5" in item:
            return str(item["md5"])
        return hasher.hash_path(inside(root, stage.repo_path(str(item["path"])))).md5
    if "hash" not in item and "md5" in item:  # an upstream's legacy output, as recorded
        return str(item["md5"])
    return hasher.legacy_md5(inside(root, stage.repo_path(str(item["path"]))))


def in_cache(store: ObjectStore, item: Mapping[str, Any]) -> bool:
    if "hash" not in item:  # a 2.x entry: its objects live under the cache root
        legacy_view = getattr(store, "legacy_view", None)
        if legacy_view is None:
            return False
        store = legacy_view()
    needed = out_objects(store, [dict(item)])
    return needed is not None and objects_usable(store, needed)
