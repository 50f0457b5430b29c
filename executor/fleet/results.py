"""What a coordinator checks of a result that came back through Redis before using it."""

from __future__ import annotations

from executor.errors import RemoteError
from executor.hashing.objects import is_md5
from executor.jobresult import JobResult
from executor.jobspec import JobSpec
from executor.pipeline.paramvalues import same_values


def check_result(spec: JobSpec, result: JobResult) -> None:
    """A result is used only if it is the run of what was submitted: same command, deps,
    params and out paths, well-formed object names. Whoever can write to Redis could
    otherwise make this repository check out any object at any path."""
    entry = result.entry
    problems = []
    if entry.get("cmd") != spec.cmd:
        problems.append("another command")
    deps = sorted((str(d.get("path")), str(d.get("md5"))) for d in entry.get("deps", []))
    if deps != sorted((str(d["path"]), str(d.get("md5"))) for d in spec.deps):
        problems.append("other dependencies")
    if not same_values(entry.get("params") or {}, dict(spec.params)):
        problems.append("other params")
    outs = entry.get("outs", [])
    if sorted(str(o.get("path")) for o in outs) != sorted(o.path for o in spec.outs):
        problems.append("other outputs")
    if not all(is_md5(o.get("md5")) for o in outs):
        problems.append("malformed object names")
    if problems:
        raise RemoteError(
            f"stage '{spec.address}': the result that came back is not the run of what was "
            f"submitted ({', '.join(problems)}); it was not used. Someone else writes to "
            "the fleet's Redis: find out who, then submit again"
        )
