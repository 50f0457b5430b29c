"""A stage of a detached run that waits for upstream stages: its job spec as far as the
submitter can resolve it, and the rest filled in on a worker from the upstream results.

The submitter hashes every input the repository holds (deps that no waited-for stage
produces, params files, persist outputs, `.dvcignore` files) and puts them into the store;
a dep that an upstream stage of the run produces is named by that stage and output. Once
the upstream stages are done, a worker takes their outputs' lock items (keys before bytes:
nothing is read or hashed again), compares the result with dvc.lock as the submitter saw
it, and decides as `dvc repro` would: skip, check out, restore from the run-cache, or run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from executor.dvcformat.entry import Entry, build_entry, stage_key
from executor.errors import InvalidJobSpec, UserError
from executor.hashing.objects import is_md5
from executor.jobspec import Input, JobSpec
from executor.pipeline.model import Stage
from executor.pipeline.model import repo_path as in_wdir
from executor.pipeline.paramvalues import same_values

# What to do when the filled-in deps and params turn out to be those dvc.lock records.
IF_UNCHANGED = ("skip", "checkout", "lookup", "run")


@dataclass
class Template:
    """One stage's job as the submitter left it (see the module's docstring)."""

    spec: dict[str, Any]  # JobSpec dict: deps from upstream stages left out, inputs resolved
    deps: list[str]  # every dep path of the stage, in its order
    sources: dict[str, list[str]]  # dep path -> [upstream stage, its output's path]
    recorded: Entry | None  # the stage's dvc.lock entry at submit time
    if_unchanged: str  # skip, checkout, lookup or run
    queue: str
    force: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Template:
        try:
            template = cls(
                spec=dict(d["spec"]),
                deps=[str(p) for p in d["deps"]],
                sources={str(k): [str(v[0]), str(v[1])] for k, v in d["sources"].items()},
                recorded=dict(d["recorded"]) if d.get("recorded") else None,
                if_unchanged=str(d["if_unchanged"]),
                queue=str(d["queue"]),
                force=bool(d.get("force", False)),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise InvalidJobSpec(f"stage template is malformed ({exc})") from None
        if template.if_unchanged not in IF_UNCHANGED:
            raise InvalidJobSpec("stage template field 'if_unchanged' is not a decision")
        return template


def sources_of(stage: Stage, deferred_outs: Mapping[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Which deps of `stage` an upstream stage still to run produces: dep -> [stage, out].
    A dep inside such an output, or holding one, cannot be resolved on a worker from lock
    items alone: refused, with what to do instead."""
    found: dict[str, list[str]] = {}
    for dep in stage.deps:
        path = stage.repo_path(dep)
        if path in deferred_outs:
            found[dep] = list(deferred_outs[path])
            continue
        for out, (producer, _) in deferred_outs.items():
            if path.startswith(out + "/") or out.startswith(path + "/"):
                raise UserError(
                    f"stage '{stage.address}': its dependency '{dep}' overlaps the output "
                    f"'{out}' of stage '{producer}', which the fleet runs first; --detach "
                    "resolves only whole outputs as dependencies: submit without --detach"
                )
    for spec in stage.params:
        path = stage.repo_path(spec.file)
        if path in deferred_outs:
            raise UserError(
                f"stage '{stage.address}': its params file '{spec.file}' is made by stage "
                f"'{deferred_outs[path][0]}'; submit without --detach"
            )
    return found


def fill(template: Template, results: Mapping[str, Entry]) -> JobSpec:
    """The stage's job spec, its upstream deps taken from the upstream stages' results
    (`results`: stage -> its lock entry) and added to its inputs."""
    spec = JobSpec.from_dict(template.spec)
    known = {str(d["path"]): dict(d) for d in spec.deps}
    inputs = list(spec.inputs)
    for dep, (producer, out) in template.sources.items():
        entry = results.get(producer)
        item = _out_item(entry, out)
        if item is None:
            raise InvalidJobSpec(
                f"stage '{spec.address}': the result of stage '{producer}' has no output '{out}'"
            )
        known[dep] = {"path": dep, **{k: v for k, v in item.items() if k != "path"}}
        inputs.append(Input(in_wdir(spec.wdir, dep), str(item["md5"]), bool(item.get("isexec"))))
    deps = tuple(known[p] for p in template.deps if p in known)
    # Validated as any job spec: paths from the template stay inside the workspace.
    return JobSpec.from_dict(replace(spec, deps=deps, inputs=tuple(inputs)).to_dict())


def _out_item(entry: Entry | None, out: str) -> Mapping[str, Any] | None:
    for item in (entry or {}).get("outs", []):
        if isinstance(item, Mapping) and item.get("path") == out and is_md5(item.get("md5")):
            return item
    return None


def unchanged(template: Template, spec: JobSpec) -> bool:
    """Whether the filled-in deps and params are those dvc.lock recorded at submit time."""
    recorded = template.recorded
    if recorded is None or template.force:
        return False
    old = {str(d.get("path")): d.get("md5") for d in recorded.get("deps", []) or []}
    new = {str(d["path"]): d.get("md5") for d in spec.deps}
    return old == new and same_values(recorded.get("params") or {}, dict(spec.params))


def key_of(spec: JobSpec) -> str:
    return stage_key(spec.cmd, list(spec.deps), spec.params, [o.path for o in spec.outs])


def restored_entry(spec: JobSpec, found: Entry) -> Entry:
    """The lock entry of a stage restored from the run-cache, as Runner.restore makes it."""
    return build_entry(
        spec.cmd, [dict(d) for d in spec.deps], spec.params, list(found.get("outs", []))
    )
