"""The stage graph, as DVC's `dvc/repo/graph.py` builds it.

A stage depends on another when one of its deps (params files included) equals one of the
other's outputs, lies inside an output directory, or contains an output. Outputs live in a trie
of path parts, so each dep costs its depth plus the outputs under it. Two stages may not share
an output, one output may not lie inside another, no dvc.yaml may lie inside an output, and
there are no cycles (a stage using its own output is one).
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterable, Sequence
from graphlib import CycleError, TopologicalSorter

from executor.errors import PipelineError
from executor.pipeline.model import OutSpec, Pipeline, Stage
from executor.pipeline.outtrie import OutTrie, Producer

__all__ = ["Dag", "Producer", "build_dag"]


def build_dag(pipeline: Pipeline) -> Dag:
    """The graph of `pipeline`; PipelineError on cycles and clashing outputs."""
    return Dag(pipeline)


class Dag:
    """Stages with their producers, ordered as `dvc repro` orders them."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.stages = pipeline.stages
        self._index = {address: index for index, address in enumerate(self.stages)}
        self.trie = OutTrie()
        for stage in self.stages.values():
            for out in stage.outs:
                self.trie.add(Producer(stage, out, stage.repo_path(out.path)))
        for stage in self.stages.values():
            inside = self.trie.containing(stage.dvcfile)
            if inside:
                raise PipelineError(
                    f"'{stage.dvcfile}' is inside output '{inside[0].out.path}' "
                    f"of stage '{inside[0].stage.address}'"
                )
        self._up: dict[str, list[str]] = {}
        self._edges: dict[str, list[str]] = {}
        self._down: dict[str, list[str]] = {address: [] for address in self.stages}
        for address, stage in self.stages.items():
            producers = {
                producer.stage.address: None
                for dep in stage.dep_paths
                for producer in self.producers(dep)
            }
            self._edges[address] = list(producers)  # DVC's edge order: by dep, then by output
            self._up[address] = sorted(producers, key=self._index.__getitem__)
            for producer in self._up[address]:
                self._down[producer].append(address)
        self._check_acyclic()

    def producers(self, path: str) -> list[Producer]:
        """Outputs that a dep at the repo-relative `path` uses (equal, containing or inside)."""
        return self.trie.overlapping(posixpath.normpath(path))

    def dep_producers(self, stage: Stage, dep: str) -> list[Producer]:
        """Outputs that `dep` (as written in `stage`, relative to its wdir) uses."""
        return self.producers(stage.repo_path(dep))

    def producer_of_out(self, path: str) -> tuple[Stage, OutSpec] | None:
        """The stage declaring exactly the output at the repo-relative `path`, if any."""
        found = self.trie.exact(posixpath.normpath(path))
        return None if found is None else (found.stage, found.out)

    def upstream(self, stage: Stage) -> list[Stage]:
        """Stages producing what `stage` depends on, directly, in definition order."""
        return [self.stages[address] for address in self._up[stage.address]]

    def downstream_of(self, stage: Stage) -> list[Stage]:
        """Stages depending directly on `stage`'s outputs, in definition order."""
        return [self.stages[address] for address in self._down[stage.address]]

    def order(self, targets: Sequence[str] = (), downstream: bool = False) -> list[Stage]:
        """Stages to run in `dvc repro`'s order: a depth-first post-order (dependencies first)
        over all stages, or over `targets` with their upstream (or downstream) stages. As in
        DVC's active graph, a frozen stage has no upstream edges, so it cuts the walk.
        """
        active = {a: ([] if self.stages[a].frozen else self._edges[a]) for a in self.stages}
        nodes: Iterable[str] = self.stages
        if targets:
            walk = active
            if downstream:
                walk = {a: [] for a in self.stages}
                for address, producers in active.items():
                    for producer in producers:
                        walk[producer].append(address)
            selected: set[str] = set()
            for target in targets:
                for stage in self.resolve(target):
                    selected.update(_postorder([stage.address], walk, None))
            nodes = [a for a in self.stages if a in selected]
            return [self.stages[a] for a in _postorder(nodes, active, selected)]
        return [self.stages[a] for a in _postorder(nodes, active, None)]

    def resolve(self, target: str) -> list[Stage]:
        """Stages a target names: `name`, `sub/dvc.yaml:name`, `train@1`, a group `train`
        (every `train@...`), or a dvc.yaml path (all its stages).
        """
        dvcfile, colon, name = target.rpartition(":")
        if not colon:
            dvcfile, name = "dvc.yaml", target
            if posixpath.basename(target) == "dvc.yaml":
                dvcfile, name = target, ""
        dvcfile = posixpath.normpath(dvcfile)
        found = [
            stage
            for stage in self.stages.values()
            if stage.dvcfile == dvcfile and (not name or name in (stage.name, stage.group))
        ]
        named = [stage for stage in found if stage.name == name]
        if named or found:
            return named or found
        raise PipelineError(f"unknown stage '{target}'{self._suggest(target)}")

    def _suggest(self, target: str) -> str:
        names: dict[str, None] = {}
        for stage in self.stages.values():
            names[stage.address] = None
            if stage.group is not None:
                prefix = "" if stage.dvcfile == "dvc.yaml" else f"{stage.dvcfile}:"
                names[f"{prefix}{stage.group}"] = None
        close = difflib.get_close_matches(target, names, n=5, cutoff=0.5)
        return f"; did you mean {_join(close)}?" if close else ""

    def _check_acyclic(self) -> None:
        sorter = TopologicalSorter({address: self._up[address] for address in self.stages})
        try:
            sorter.prepare()
        except CycleError as exc:
            cycle = list(dict.fromkeys(exc.args[1]))
            raise PipelineError(f"pipeline has a cycle involving stages {_join(cycle)}") from None


def _postorder(
    starts: Iterable[str], edges: dict[str, list[str]], allowed: set[str] | None
) -> list[str]:
    """networkx's dfs_postorder_nodes: starts in order, successors in edge order; iterative,
    so a 10,000-stage chain does not hit the recursion limit."""
    seen: set[str] = set()
    order: list[str] = []
    for start in starts:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(edges[start]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen and (allowed is None or child in allowed):
                    seen.add(child)
                    stack.append((child, iter(edges[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _join(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
