"""Stage outputs in a trie of path parts (DVC's `dvc/repo/trie.py: build_outs_trie`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from executor.errors import PipelineError
from executor.pipeline.model import OutSpec, Stage


@dataclass(frozen=True)
class Producer:
    """An output of a stage; `path` is repo-relative and normalised."""

    stage: Stage
    out: OutSpec
    path: str


class _Node:
    __slots__ = ("children", "producer")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.producer: Producer | None = None

    def below(self) -> Iterator[Producer]:
        for child in self.children.values():
            if child.producer is not None:
                yield child.producer
            yield from child.below()


class OutTrie:
    """Outputs by path; no output may equal or contain another."""

    def __init__(self) -> None:
        self.root = _Node()

    def add(self, producer: Producer) -> None:
        """Insert an output; PipelineError if it clashes with one already there."""
        node = self.root
        for part in _parts(producer.path):
            if node.producer is not None:
                raise _overlap(node.producer, producer)
            node = node.children.setdefault(part, _Node())
        if node.producer is not None:
            raise _duplicate(node.producer, producer)
        for inner in node.below():
            raise _overlap(producer, inner)
        node.producer = producer

    def exact(self, path: str) -> Producer | None:
        """The output at exactly `path`."""
        node = self._find(path)
        return None if node is None else node.producer

    def containing(self, path: str) -> list[Producer]:
        """Outputs equal to `path` or containing it."""
        node: _Node | None = self.root
        found = [] if self.root.producer is None else [self.root.producer]
        for part in _parts(path):
            node = node.children.get(part) if node is not None else None
            if node is None:
                break
            if node.producer is not None:
                found.append(node.producer)
        return found

    def overlapping(self, path: str) -> list[Producer]:
        """Outputs equal to `path`, containing it, or inside it."""
        found = self.containing(path)
        node = self._find(path)
        if node is not None:
            found.extend(node.below())
        return found

    def _find(self, path: str) -> _Node | None:
        node: _Node | None = self.root
        for part in _parts(path):
            assert node is not None
            node = node.children.get(part)
            if node is None:
                return None
        return node


def _parts(path: str) -> list[str]:
    return [] if path == "." else path.split("/")


def _duplicate(first: Producer, second: Producer) -> PipelineError:
    if first.stage.address == second.stage.address:
        return PipelineError(
            f"output '{second.path}' is specified twice in stage '{first.stage.address}'"
        )
    return PipelineError(
        f"output '{second.path}' is specified in stages "
        f"'{first.stage.address}' and '{second.stage.address}'"
    )


def _overlap(outer: Producer, inner: Producer) -> PipelineError:
    return PipelineError(
        f"output '{inner.path}' of stage '{inner.stage.address}' is inside output "
        f"'{outer.path}' of stage '{outer.stage.address}': outputs must not overlap"
    )
