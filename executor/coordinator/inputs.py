"""A stage's inputs by content, as a worker is given them: what the coordinator uploads before
a job, and what a lookup compares with the layout a worker recorded (JobSpec.layout)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from executor.confine import inside
from executor.hashing.hasher import Hasher
from executor.jobspec import Input, JobSpec


@dataclass
class Inputs:
    """The inputs of one job, and where their objects come from."""

    inputs: tuple[Input, ...] = ()
    files: dict[str, str] = field(default_factory=dict)  # md5 -> a file with that content
    manifests: dict[str, bytes] = field(default_factory=dict)  # `.dir` md5 -> its manifest


def describe_inputs(
    spec: JobSpec, root: Path, hasher: Hasher, skip: frozenset[str] = frozenset()
) -> Inputs:
    """Every input of `spec` that exists in the repository at `root`, hashed (but those at
    the paths `skip` names: a detached run's upstream outputs, which the fleet makes)."""
    found = Inputs()
    inputs: list[Input] = []
    paths = (p for p in spec.input_paths() if p not in skip and os.path.lexists(root / p))
    for rel in paths:
        path = inside(root, rel)
        if path.is_dir():
            info, entries, manifest = hasher.hash_tree(path)
            found.manifests[info.md5] = manifest
            for e in entries:
                found.files.setdefault(e.md5, os.path.join(path, e.relpath))
            runnable = tuple(e.relpath for e in entries if e.isexec)
            inputs.append(Input(rel, info.md5, info.isexec, runnable, empty_folders(path)))
        else:
            info = hasher.hash_file(path)
            found.files.setdefault(info.md5, str(path))
            inputs.append(Input(rel, info.md5, info.isexec))
    found.inputs = tuple(inputs)
    return found


def layout_in(spec: JobSpec, root: Path, hasher: Hasher) -> str:
    """The layout (JobSpec.layout) a worker would record for `spec` sent from `root`."""
    return replace(spec, inputs=describe_inputs(spec, root, hasher).inputs).layout()


def empty_folders(root: Path) -> tuple[str, ...]:
    """Folders under `root` with nothing in them (relpaths): a `.dir` manifest lists files
    only, but a stage may expect them, as it finds them with `dvc repro`."""
    found = []
    for folder, dirnames, filenames in os.walk(root):
        if not dirnames and not filenames and folder != str(root):
            found.append(Path(folder).relative_to(root).as_posix())
    return tuple(sorted(found))
