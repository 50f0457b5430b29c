"""YAML documents read the way DVC reads them (ruamel, YAML 1.2, safe), fast, with lines.

ruamel's pure-Python loader needs ~0.7 s for a 1,000-stage dvc.yaml. With ruamel's libyaml
binding (ruamel.yaml.clib, a dependency) its C parser produces the events, and ruamel's YAML
1.2 resolver and constructor turn plain scalars into values, so the data is the same. Anything
unusual (tags, merge keys, directives, duplicate or complex keys, several documents, any error,
and what old libyaml rejects, such as `{image: python:3.11}`) is handed to ruamel itself, which
stays the authority on values and messages.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from executor.errors import PipelineError
from executor.yamlio import yaml_error

KeyPath = tuple[Any, ...]

_LINE_DEPTH = 7  # deep enough for stages.<name>.do.<field>.<index>.<path>
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null", "timestamp")
)
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class YamlDoc:
    """Parsed data plus the 1-based line of each mapping key and sequence item, by key path."""

    data: Any
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    def line(self, *path: Any) -> int | None:
        """The line of `path`, or of its deepest ancestor whose line is known."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def read(path: Path, where: str, *, lines: bool = False) -> YamlDoc:
    """Read and parse a UTF-8 YAML file; errors name `where`."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError("is not valid UTF-8", path=where) from None
    except OSError as exc:
        raise PipelineError(f"cannot be read: {exc.strerror}", path=where) from None
    return parse(text, where, lines=lines)


def parse(text: str, where: str, *, lines: bool = False, fast: bool = True) -> YamlDoc:
    """Parse YAML 1.2 text into plain values, exactly as ruamel's safe loader does."""
    libyaml = _libyaml() if fast else None
    try:
        if libyaml is not None:
            try:
                return _Builder(lines, libyaml).build(text)
            except _Unusual:
                pass
        return _with_ruamel(text, where, lines)
    except RecursionError:
        raise too_deep(where) from None


def too_deep(where: str) -> PipelineError:
    """The error for a document nested deeper than Python's recursion allows."""
    return PipelineError(
        "is nested too deeply to be read (thousands of levels); flatten it", path=where
    )


class _Unusual(Exception):
    """The document uses something only ruamel itself should interpret."""


@functools.cache
def _libyaml() -> ModuleType | None:
    """ruamel's own libyaml binding, shaped as: events, CParser, YAMLError."""
    try:
        from _ruamel_yaml import CParser  # type: ignore[import-not-found]
    except ImportError:
        return None
    import ruamel.yaml.events

    binding = ModuleType("ruamel_libyaml")
    binding.events = ruamel.yaml.events  # type: ignore[attr-defined]
    binding.CParser = CParser  # type: ignore[attr-defined]
    binding.YAMLError = YAMLError  # type: ignore[attr-defined]
    return binding


class _Frame:
    __slots__ = ("container", "key", "path")

    def __init__(self, container: dict[Any, Any] | list[Any], path: KeyPath) -> None:
        self.container = container
        self.path = path
        self.key: Any = _Builder.NO_KEY


class _Builder:
    """Plain values from libyaml events, resolved by ruamel's YAML 1.2 rules."""

    NO_KEY = object()

    def __init__(self, want_lines: bool, libyaml: ModuleType) -> None:
        self.libyaml = libyaml
        self.want_lines = want_lines
        self.lines: dict[KeyPath, int] = {}
        self.anchors: dict[str, Any] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.scalars: dict[str, Any] = {}
        self.resolver = VersionedResolver(version=(1, 2))
        self.constructor: Any = None

    def build(self, text: str) -> YamlDoc:
        events = self.libyaml.events
        parser = self.libyaml.CParser(text)
        documents = 0
        try:
            while True:
                event = parser.get_event()
                kind = type(event)
                if kind is events.ScalarEvent:
                    self.scalar(event)
                elif kind is events.MappingStartEvent:
                    self.start(event, {})
                elif kind is events.SequenceStartEvent:
                    self.start(event, [])
                elif kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                    self.stack.pop()
                elif kind is events.AliasEvent:
                    if event.anchor not in self.anchors:
                        raise _Unusual
                    self.place(self.anchors[event.anchor], event.start_mark.line)
                elif kind is events.DocumentStartEvent:
                    documents += 1
                    if documents > 1 or event.version or event.tags:
                        raise _Unusual
                elif kind is events.StreamEndEvent:
                    return YamlDoc(self.root, self.lines)
        except self.libyaml.YAMLError as exc:  # ruamel judges and words every error
            raise _Unusual from exc
        finally:
            parser.dispose()

    def scalar(self, event: Any) -> None:
        if event.tag is not None:
            raise _Unusual
        value = self.plain(event.value) if event.implicit[0] else event.value
        self.remember(event.anchor, value)
        self.place(value, event.start_mark.line)

    def plain(self, text: str) -> Any:
        if text in self.scalars:
            return self.scalars[text]
        tag = str(self.resolver.resolve(ScalarNode, text, (True, False)))
        if tag == _STR_TAG:
            value: Any = text
        elif tag in _PLAIN_TAGS:
            if self.constructor is None:
                self.constructor = YAML(typ="safe", pure=True).constructor
            value = self.constructor.construct_object(ScalarNode(tag, text, None, None))
        else:
            raise _Unusual
        self.scalars[text] = value
        return value

    def start(self, event: Any, container: dict[Any, Any] | list[Any]) -> None:
        if event.tag is not None:
            raise _Unusual
        self.remember(event.anchor, container)
        path = self.place(container, event.start_mark.line)
        self.stack.append(_Frame(container, path))

    def remember(self, anchor: str | None, value: Any) -> None:
        if anchor is not None:
            self.anchors[anchor] = value

    def place(self, value: Any, line: int) -> KeyPath:
        """Put `value` into the open container; returns its key path."""
        if not self.stack:
            self.root = value
            return ()
        top = self.stack[-1]
        container = top.container
        if isinstance(container, list):
            path = (*top.path, len(container))
            container.append(value)
        elif top.key is self.NO_KEY:
            if isinstance(value, (dict, list)) or value in container:
                raise _Unusual  # complex or duplicate key: ruamel decides
            top.key = value
            path = (*top.path, value)
        else:
            path = (*top.path, top.key)
            container[top.key] = value
            top.key = self.NO_KEY
            return path
        if self.want_lines and len(path) <= _LINE_DEPTH:
            self.lines[path] = line + 1
        return path


def _with_ruamel(text: str, where: str, want_lines: bool) -> YamlDoc:
    try:
        data = YAML(typ="safe", pure=True).load(text)
        lines: dict[KeyPath, int] = {}
        if want_lines:
            _node_lines(YAML(typ="safe", pure=True).compose(text), (), lines)
    except YAMLError as exc:
        raise yaml_error(exc, where) from None
    return YamlDoc(data, lines)


def _node_lines(node: Node | None, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if node is None or len(path) >= _LINE_DEPTH:
        return
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _STR_TAG:
                child = (*path, key_node.value)
                lines.setdefault(child, key_node.start_mark.line + 1)
                _node_lines(value_node, child, lines)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _node_lines(item, (*path, index), lines)
