"""Per stage, from hashes: skip it, check its outputs out, look it up in the run-cache, run
it, or (frozen) verify it; as `dvc repro` decides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.coordinator.plan import Evaluation, evaluate, hash_deps, in_cache
from executor.coordinator.types import RunOptions
from executor.dvcformat.entry import Entry
from executor.pipeline import ParamsReader
from executor.pipeline.model import Stage
from executor.workspace import Workspace


def decide(
    stage: Stage,
    recorded: Entry | None,
    *,
    ws: Workspace,
    options: RunOptions,
    params: ParamsReader,
    known_outs: Mapping[str, Mapping[str, Any]],
) -> tuple[str, Evaluation]:
    """'skip', 'checkout', 'lookup', 'run' or (frozen) 'verify', and the evaluation behind it.
    `known_outs`: outputs this run produced so far (repo path -> lock item)."""
    if stage.frozen:
        return decide_frozen(stage, recorded, ws=ws, options=options)
    allowed = recorded if options.allow_missing else None
    deps = hash_deps(ws.root, stage, ws.hasher, known_outs, allowed)
    values = params.values(stage)
    if options.force:
        return "run", Evaluation(stage, deps, values, recorded, reasons=["forced"])
    ev = evaluate(ws.root, stage, deps, values, recorded, ws.hasher, ws.store)
    if not ev.reasons and not ev.outs_only:
        return "skip", ev
    if missing_allowed(ev, options):
        return "skip", ev
    outs = recorded.get("outs", []) if recorded else []
    if ev.outs_only and stage.cacheable and all(in_cache(ws.store, o) for o in outs):
        return "checkout", ev
    if stage.cacheable:
        return "lookup", ev
    return "run", ev


def decide_frozen(
    stage: Stage, recorded: Entry | None, *, ws: Workspace, options: RunOptions
) -> tuple[str, Evaluation]:
    """DVC never runs a frozen stage and ignores its deps; if its command or outputs
    differ from dvc.lock, it verifies the outputs exist and records them as they are."""
    deps = list((recorded or {}).get("deps", []))
    params = dict((recorded or {}).get("params", {}))
    ev = evaluate(ws.root, stage, deps, params, recorded, ws.hasher, ws.store)
    if options.force or ev.reasons or (ev.outs_only and not missing_allowed(ev, options)):
        return "verify", ev
    return "skip", ev


def missing_allowed(ev: Evaluation, options: RunOptions) -> bool:
    """DVC's --allow-missing: outputs deleted or not in the cache are fine, if that is
    all that differs (a modified output is not)."""
    return options.allow_missing and ev.outs_only and not ev.changed_outs
