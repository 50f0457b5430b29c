"""Finding a params key in a parsed params file: dpath's matching of dotted keys, globs and `**`."""

from __future__ import annotations

import fnmatch
from typing import Any

from executor.errors import PipelineError

_FNMATCH = frozenset("*?[")


def lookup_param(
    document: Any, key: str, repo_path: str, str_keyed: dict[int, bool] | None = None
) -> Any:
    """The value of one params key, found as DVC finds it: `dpath.get(doc, key, ".")`.

    Each dot-separated part is an fnmatch pattern matched against the keys (and list indices)
    at its depth, exactly one node must match, and that node (a whole subtree, if it is one)
    is the value. As in dpath, an int key or list index matches a part that `int()` reads as
    the same number (`-1` is the last item), other keys match through `str()` when the part
    is not a number (`True`, never `true`), and float or null keys match nothing.
    `str_keyed` caches, by id, which dicts of `document` have only string keys.
    """
    if not key or key == "/":  # dpath's own shortcuts
        return document
    parts = key.lstrip(".").split(".")
    if "**" in parts:
        found = _deep_matches(document, parts)
    else:
        found = [document]
        for part in parts:
            found = [child for node in found for child in _children(node, part, str_keyed)]
    if not found:
        raise PipelineError(f"param '{key}' is missing from '{repo_path}'")
    if len(found) > 1:
        raise PipelineError(
            f"param '{key}' matches more than one value in '{repo_path}'; DVC takes a glob "
            "only when it matches exactly one: make the pattern narrower"
        )
    return found[0]


def _children(node: Any, part: str, str_keyed: dict[int, bool] | None) -> list[Any]:
    """The children of `node` whose key or index matches the pattern `part`."""
    if isinstance(node, dict):
        if not _FNMATCH & set(part) and _only_str_keys(node, str_keyed):
            return [node[part]] if part in node else []
        return [value for name, value in node.items() if _part_matches(name, part)]
    if isinstance(node, list):
        size = len(node)
        return [value for index, value in enumerate(node) if _part_matches(index, part, size)]
    return []


def _only_str_keys(node: dict[Any, Any], cache: dict[int, bool] | None) -> bool:
    if cache is None:
        return all(type(name) is str for name in node)
    known = cache.get(id(node))
    if known is None:
        known = cache[id(node)] = all(type(name) is str for name in node)
    return known


def _part_matches(name: Any, part: str, size: int | None = None) -> bool:
    """dpath's `segments.match` for one segment (`size`: the list's, for negative indices)."""
    if isinstance(name, int):  # bools too, as in dpath
        try:
            wanted = int(part)
        except ValueError:
            name = str(name)
        else:
            if name == wanted or (size is not None and size + wanted == name):
                return True
    if not isinstance(name, str):
        return False  # fnmatch fails on floats, nulls and ints that did not match as numbers
    return fnmatch.fnmatchcase(name, part)


def _deep_matches(document: Any, parts: list[str]) -> list[Any]:
    """Matches of a pattern holding `**` (any number of parts, at most one `**`)."""
    if parts.count("**") > 1:
        raise PipelineError(f"only one '**' is allowed in a params key: '{'.'.join(parts)}'")
    star = parts.index("**")
    found: list[Any] = []
    stack: list[tuple[Any, tuple[tuple[Any, int | None], ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        items: list[tuple[Any, int | None, Any]]
        if isinstance(node, dict):
            items = [(name, None, value) for name, value in node.items()]
        elif isinstance(node, list):
            items = [(index, len(node), value) for index, value in enumerate(node)]
        else:
            continue
        for name, size, value in items:
            here = (*path, (name, size))
            if _path_matches(here, parts, star):
                found.append(value)
            stack.append((value, here))
    return found


def _path_matches(path: tuple[tuple[Any, int | None], ...], parts: list[str], star: int) -> bool:
    if len(path) >= len(parts):
        glob = parts[:star] + ["*"] * (len(path) - len(parts) + 1) + parts[star + 1 :]
    elif len(path) == len(parts) - 1:
        glob = parts[:star] + parts[star + 1 :]
    else:
        return False
    return all(_part_matches(name, g, size) for (name, size), g in zip(path, glob, strict=True))
