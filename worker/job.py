"""One stage run in a workspace: sandbox, hash and store outputs, record the run-cache entry.

The same recipe serves `executor run` (the workspace is the repository itself, the store its
`.dvc/cache`) and fleet workers (a materialised workspace, an S3 store).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from executor.confine import inside
from executor.coordinator.outputs import remove_output, store_outputs, unprotect_output
from executor.dvcformat.entry import build_entry, lock_item
from executor.errors import (
    InvalidJobSpec,
    StageCancelled,
    StageFailed,
    StageOutOfMemory,
    StageTimedOut,
    StoreError,
    WorkspaceError,
)
from executor.hashing.hasher import Hasher
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.pipeline.model import repo_path
from executor.pipeline.params import ParamsReader
from executor.runcache import RunCache, env_digest
from executor.stageio import StageIO
from executor.store.base import ObjectStore
from executor.store.local import LocalStore
from worker.sandbox.engine import (
    DockerSandbox,
    Limits,
    Mount,
    Prepared,
    SandboxOutcome,
    SandboxRequest,
    stage_user,
)

log = logging.getLogger(__name__)


def container_name(spec: JobSpec, job_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in spec.address)
    return f"executor-{job_id}-{safe}"[:200]


def _size(n: int) -> str:
    for unit, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n} bytes"


def _raise_for(spec: JobSpec, outcome: SandboxOutcome, limits: Limits) -> None:
    if outcome.status == "succeeded":
        return
    if outcome.status == "cancelled":
        raise StageCancelled(spec.address)
    if outcome.status == "timed_out":
        raise StageTimedOut(spec.address, limits.timeout or 0.0)
    if outcome.status == "out_of_memory":
        raise StageOutOfMemory(spec.address, _size(limits.memory) if limits.memory else None)
    raise StageFailed(spec.address, outcome.exit_code, outcome.failed_line, outcome.log_tail)


def deps_after_run(spec: JobSpec, workspace: Path, hasher: Hasher) -> list[dict[str, Any]]:
    """The deps' lock items as the command left them: DVC hashes deps again after a run, so a
    stage that rewrites its own dep is recorded (in dvc.lock and its run-cache key) with the
    new content. Unchanged files cost a stat (the state cache); a dep the command deleted
    keeps the item it had."""
    items = []
    for dep in spec.deps:
        rel = str(dep["path"])
        path = inside(workspace, repo_path(spec.wdir, rel))
        if "hash" not in dep or not path.exists():
            # A DVC 2 item (md5-dos2unix, recorded upstream) is kept as the plan found it.
            items.append(dict(dep))
            continue
        items.append(lock_item(rel, hasher.hash_path(path)))
    return items


def verify_inputs(spec: JobSpec, workspace: Path, hasher: Hasher, params: ParamsReader) -> None:
    """The entry a run records is built from the spec: before running, check that the
    workspace holds what the spec says (each dep's content, each params value), that it
    was given nothing else, and that `lines` are what `cmd` runs. InvalidJobSpec, naming
    the first difference, if not."""

    def refused(what: str) -> InvalidJobSpec:
        return InvalidJobSpec(
            f"stage '{spec.address}': {what}; if a dependency changed while submit ran, "
            "submit again"
        )

    if spec.lines != spec.cmd_lines():
        raise refused("the job's lines are not what its cmd runs")
    allowed = set(spec.input_paths())
    deps = {repo_path(spec.wdir, str(d["path"])): d for d in spec.deps if "hash" in d}
    for given in spec.inputs:
        if given.path not in allowed:
            raise refused(f"input '{given.path}' is no dep, params, persist or ignore file")
        dep = deps.get(given.path)
        if dep is not None and dep["md5"] != given.md5:
            raise refused(f"input '{given.path}' is not the content its dep names")
    for dep in spec.deps:
        rel = str(dep["path"])
        path = inside(workspace, repo_path(spec.wdir, rel))
        if not path.exists():
            raise refused(f"dep '{rel}' has no input in the workspace")
        actual = hasher.hash_path(path).md5 if "hash" in dep else hasher.legacy_md5(path)
        if actual != dep["md5"]:
            raise refused(f"dep '{rel}' is {actual} in the workspace, not {dep['md5']}")
    wrong = params.differences(spec.wdir, spec.params)
    if wrong:
        raise refused(f"params {', '.join(wrong)} differ from the params files")


def _check_deps_kept(spec: JobSpec, after: list[dict[str, Any]]) -> None:
    before = {str(d["path"]): d.get("md5") for d in spec.deps}
    for item in after:
        path = str(item["path"])
        if before.get(path) != item.get("md5"):
            raise WorkspaceError(
                f"stage '{spec.address}' changed its dependency '{path}' while it ran; "
                "on a fleet a stage's dependencies are read-only inputs: run it with "
                "`executor run`, or make it write an output instead"
            )


def container_request(
    spec: JobSpec,
    workspace: Path,
    *,
    job_id: str,
    image_digest: str,
    limits: Limits,
    mounts: tuple[Mount, ...],
    io: StageIO | None = None,
) -> SandboxRequest:
    """The container a stage runs in. Only the fields that shape it are read from `spec`
    (address, dvc_stage, lines, wdir, env), so it can be prepared before deps are known."""
    wdir = inside(workspace, spec.wdir)
    if not wdir.is_dir():
        raise WorkspaceError(f"stage '{spec.address}': wdir '{spec.wdir}' is not a directory")
    # DVC sets DVC_ROOT only if unset and always overwrites DVC_STAGE.
    env = {"DVC_ROOT": str(workspace), **spec.env, "DVC_STAGE": spec.dvc_stage}
    return SandboxRequest(
        stage=spec.address,
        name=container_name(spec, job_id),
        image=image_digest,
        lines=spec.lines,
        workdir=str(wdir),
        mounts=mounts,
        env=env,
        labels={"executor.job": job_id, "executor.stage": spec.address},
        limits=limits,
        user=stage_user(workspace),
        io=io,
    )


def execute(
    spec: JobSpec,
    workspace: Path,
    *,
    store: ObjectStore,
    runcache: RunCache,
    sandbox: DockerSandbox,
    hasher: Hasher,
    request: SandboxRequest,
    prepared: Prepared | None = None,
    fixed_deps: bool = False,
    layout: str | None = None,
) -> JobResult:
    """Run the stage's command in `workspace`; outputs stored and recorded only on success.

    `request` comes from `container_request`; `prepared`, if given, is its container already
    started (DockerSandbox.prepare) and is used instead of starting one. With `fixed_deps`
    (a fleet worker, whose changes to deps would never reach the repository) a stage that
    changed a dep fails instead of being recorded with the changed one, as `dvc repro` does.
    `layout` (a worker's: JobSpec.layout) goes into the record of the run.
    """
    try:
        cache = store.root if isinstance(store, LocalStore) else None
        for out in spec.outs:
            if out.persist and out.committed:  # DVC unprotects cached outputs only
                unprotect_output(workspace, out.repo_path, cache)
            elif not out.persist:
                remove_output(workspace, out.repo_path)
    except BaseException:
        if prepared is not None:
            sandbox.discard(prepared)
        raise
    outcome = sandbox.release(prepared if prepared is not None else sandbox.prepare(request))
    _raise_for(spec, outcome, request.limits)

    deps = deps_after_run(spec, workspace, hasher)
    if fixed_deps:
        _check_deps_kept(spec, deps)
    outs = store_outputs(spec.address, spec.outs, workspace, store, hasher, commit=spec.commit)
    # The spec's params came through JSON; the run-cache entry holds the files' key types.
    entry = build_entry(spec.cmd, deps, ParamsReader(workspace).typed(spec.wdir, spec.params), outs)
    key = None
    if spec.run_cacheable() and spec.commit:
        try:
            key, _ = runcache.save(
                entry,
                image=spec.image,
                image_digest=outcome.image_digest,
                env=env_digest(spec.env),
                layout=layout,
            )
        except OSError as exc:
            raise StoreError(f"cannot record the run-cache entry: {exc}") from exc
    return JobResult(spec.address, entry, outcome.image_digest, outcome.duration, key)
