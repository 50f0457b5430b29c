"""`${...}` expressions in dvc.yaml strings, as DVC's `dvc/parsing/interpolate.py` reads them.

A string that is exactly one `${x}` takes x's value with its type; otherwise every `${x}` is
rendered into the text. A `\\${` is not an expression and becomes `${` in the result.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from executor.errors import PipelineError

_EXPRESSION = re.compile(r"(?<!\\)\$\{(?P<inner>.*?)\}")
# DVC's pyparsing grammar: word (("." word) | ("[" word "]"))*, a word being any run of
# characters other than ".[]" (spaces included). pyparsing expands tabs first, and skips
# whitespace before a "." or "[" or the end, which only matters after a "]".
_GRAMMAR = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[[^.\[\]]+\][ \t\r\n]*)*")
_CLOSE = re.compile(r"\][ \t\r\n]*")
_SCALARS = (int, float, str, bytes, bool)

Select = Callable[[str], Any]


def has_expressions(text: str) -> bool:
    """Whether `text` holds a `${...}` expression."""
    return "${" in text and _EXPRESSION.search(text) is not None


def parse_expression(inner: str) -> str:
    """The dotted key of the expression inside `${...}` (`a[0].b` -> `a.0.b`)."""
    expanded = inner.expandtabs()
    if not _GRAMMAR.fullmatch(expanded):
        raise PipelineError(f"invalid expression '${{{inner}}}'")
    return _CLOSE.sub("", expanded).replace("[", ".")


def select(data: Mapping[str, Any], key: str) -> Any:
    """Look a dotted key up in nested dicts and lists; KeyError(key) if absent."""
    node: Any = data
    for raw in key.split("."):
        part = raw.strip()
        try:
            if isinstance(node, Mapping):
                node = node[part]
            elif isinstance(node, list):
                node = node[int(part)]
            else:
                raise KeyError(key)
        except (KeyError, IndexError, ValueError):
            raise KeyError(key) from None
    return node


def resolve(value: Any, lookup: Select, field: str | None) -> Any:
    """Interpolate every string (mapping keys too) inside `value`."""
    if isinstance(value, str):
        return resolve_str(value, lookup, field)
    if isinstance(value, Mapping):
        resolved = {}
        for key, item in value.items():
            new_key = resolve(key, lookup, field)
            if isinstance(new_key, (dict, list)):
                raise PipelineError(f"'{key}' cannot be used as a key: it is a {_kind(new_key)}")
            resolved[new_key] = resolve(item, lookup, field)
        return resolved
    if isinstance(value, list):
        return [resolve(item, lookup, field) for item in value]
    return value


def resolve_str(text: str, lookup: Select, field: str | None) -> Any:
    """Interpolate one string; `field` is the stage field it sits in (None: foreach/matrix)."""
    if "${" not in text:
        return text
    matches = list(_EXPRESSION.finditer(text))
    if len(matches) == 1 and matches[0].group(0) == text:
        value = _value(matches[0], lookup)
        _check_embeddable(value, field, matches[0])
        return value
    pieces: list[str] = []
    end = 0
    for match in matches:
        value = _value(match, lookup)
        _check_embeddable(value, field, match)
        pieces.append(text[end : match.start()])
        pieces.append(to_str(value))
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces).replace("\\${", "${")


def is_reference(value: Any) -> bool:
    """Whether `value` is a string made of exactly one `${...}` expression."""
    if not isinstance(value, str) or "${" not in value:
        return False
    matches = list(_EXPRESSION.finditer(value))
    return len(matches) == 1 and matches[0].group(0) == value


def to_str(value: Any) -> str:
    """Render a value into text the way DVC does (booleans lower case, dicts as options)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _options(value)
    return str(value)


def _value(match: re.Match[str], lookup: Select) -> Any:
    key = parse_expression(match.group("inner"))
    try:
        return lookup(key)
    except KeyError:
        raise PipelineError(f"undefined variable '{key}' in '{match.group(0)}'") from None


def _check_embeddable(value: Any, field: str | None, match: re.Match[str]) -> None:
    if field is None or value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, dict) and field == "cmd":
        return
    kind = type(value).__name__
    raise PipelineError(f"cannot interpolate data of type '{kind}' from '{match.group(0)}'")


def _options(values: dict[Any, Any]) -> str:
    """`{a: 1, b: true, c: [x, y], d: {e: z}}` -> `--a 1 --b --c x y --d.e z`."""
    words: list[str] = []
    for key, item in _flatten(values, ""):
        if isinstance(item, bool):
            if item:
                words.append(f"--{key}")
        elif isinstance(item, str):
            words.append(f"--{key} {shlex.quote(item)}")
        elif isinstance(item, (list, tuple, set, bytes)):
            parts = []
            for element in item:
                if isinstance(element, str):
                    element = shlex.quote(element)
                elif isinstance(element, (list, tuple, set, dict, bytes)):
                    raise PipelineError(f"cannot interpolate nested iterable in '{key}'")
                parts.append(f"{element}")
            if parts:
                words.append(f"--{key} " + " ".join(parts))
        else:
            words.append(f"--{key} {item}")
    return " ".join(words)


def _flatten(values: Mapping[Any, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, item in values.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            yield from _flatten(item, f"{name}.")
        elif not isinstance(item, Mapping):
            yield name, item


def _kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list"
