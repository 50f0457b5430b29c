"""Which files of a directory DVC hashes: its walk and its `.dvcignore` rules (dvc/ignore.py).

DVC walks with `os.walk(followlinks=False)`, skips `.git` (file or directory), `.hg/`, `.dvc/`
and nested DVC repositories (directories holding a `.dvc`), and applies every `.dvcignore`
from the repository root down: gitignore syntax, each file's patterns rebased onto the root
and appended, the last matching pattern wins, and nothing below an ignored directory comes back.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence

from executor.errors import WorkspaceError

DVCIGNORE = ".dvcignore"
DEFAULT_PATTERNS = (".hg/", ".git/", ".git", ".dvc/")
_IGNORED_DIRS = frozenset({".git", ".hg", ".dvc"})

# (relative path of the file from the walked directory, its path, its stat with links followed)
WalkedFile = tuple[str, str, os.stat_result]


class IgnoreRules:
    """Gitignore patterns anchored at the repository root; the last matching pattern wins."""

    def __init__(self, patterns: Sequence[str]) -> None:
        # pathspec is imported only when a `.dvcignore` exists: it costs ~30 ms.
        from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

        self.patterns = tuple(patterns)
        compiled: list[tuple[re.Pattern[str], bool, bool]] = []
        for pattern in self.patterns:
            regex, include = GitIgnoreSpecPattern.pattern_to_regex(pattern)
            if regex is not None and include is not None:
                compiled.append((re.compile(regex), include, pattern.endswith("/")))
        self._newest_first = compiled[::-1]
        self._memo: dict[tuple[str, bool], bool] = {}

    def with_file(self, dir_rel: str, lines: Sequence[str]) -> IgnoreRules:
        """These rules followed by a `.dvcignore` found in `dir_rel` ('' for the root)."""
        added = lines if not dir_rel else [_rebase(line, dir_rel) for line in lines]
        return IgnoreRules([*self.patterns, *added])

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the root-relative posix path `rel`, or a directory above it, is ignored."""
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if self._match("/".join(parts[:i]), is_dir or i < len(parts)):
                return True
        return False

    def _match(self, path: str, is_dir: bool) -> bool:
        key = (path, is_dir)
        if key not in self._memo:
            self._memo[key] = self._last_match(path, is_dir)
        return self._memo[key]

    def _last_match(self, path: str, is_dir: bool) -> bool:
        candidates = (path, path + "/") if is_dir and not path.endswith("/") else (path,)
        for regex, ignore, dir_only in self._newest_first:
            if dir_only and not is_dir:
                continue
            if any(regex.match(p) for p in candidates):
                return ignore
        return False


def _rebase(rule: str, rel: str) -> str:
    """A pattern from `<rel>/.dvcignore` rewritten for the root (dvc/pathspec_math.change_rule)."""
    rule = rule.strip()
    if rule.startswith("#"):
        return rule
    negate = rule.startswith("!")
    if negate:
        rule = rule[1:]
    anchored = "/" in rule[:-1] and not rule.startswith("**/")
    rule = rule.removeprefix("/") if anchored else rule.removeprefix("**/")
    if rule.startswith("\\"):
        rule = rule[1:]
    rule = f"/{rel}/{rule}" if anchored else f"/{rel}/**/{rule}"
    return f"!{rule}" if negate else rule.removeprefix("/")


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        stripped = (line.strip() for line in f)
        return [line for line in stripped if line and not line.startswith("#")]


def _rel(rel_dir: str, name: str) -> str:
    if not rel_dir or not name:
        return rel_dir or name
    return f"{rel_dir}/{name}"


def _rules_at(top: str, root: str | None) -> tuple[IgnoreRules | None, str | None]:
    """Rules in force in `top` (None: only the defaults) and `top` relative to the root."""
    if root is None:
        return None, None
    rel = os.path.relpath(top, root)
    if rel == os.curdir:
        rel = ""
    elif rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None, None  # outside the repository: only the defaults
    rel = rel.replace(os.sep, "/")
    rules: IgnoreRules | None = None
    parts = rel.split("/") if rel else []
    for depth in range(len(parts)):
        here = "/".join(parts[:depth])
        rules = _updated(rules, root, here)
    return rules, rel


def _updated(rules: IgnoreRules | None, root: str, dir_rel: str) -> IgnoreRules | None:
    path = os.path.join(root, dir_rel, DVCIGNORE)
    if not os.path.isfile(path) or _is_ignored(rules, _rel(dir_rel, DVCIGNORE), False):
        return rules
    base = rules if rules is not None else IgnoreRules(DEFAULT_PATTERNS)
    return base.with_file(dir_rel, _read_lines(path))


def _is_ignored(rules: IgnoreRules | None, rel: str, is_dir: bool) -> bool:
    if rules is None:
        name = rel.rpartition("/")[2]
        return name in _IGNORED_DIRS if is_dir else name == ".git"
    return rules.ignored(rel, is_dir)


def walk_files(top: str, root: str | None) -> list[WalkedFile]:
    """Every file DVC would list under the directory `top` of the repository at `root`."""
    rules_top, rel_top = _rules_at(top, root)
    found: list[WalkedFile] = []
    stack: list[tuple[str, str, IgnoreRules | None]] = [(top, "", rules_top)]
    while stack:
        path, prefix, rules = stack.pop()
        with os.scandir(path) as it:
            entries = list(it)
        names = {entry.name for entry in entries}
        if prefix and ".dvc" in names:
            continue  # a nested DVC repository
        rel_dir = _rel(rel_top, prefix.rstrip("/")) if rel_top is not None else ""
        if root is not None and rel_top is not None and DVCIGNORE in names:
            rules = _updated(rules, root, rel_dir)
        for entry in entries:
            name = entry.name
            rel = name if rules is None else _rel(rel_dir, name)
            if entry.is_dir():
                # os.walk lists a link to a directory as a directory, and never enters it.
                if not entry.is_symlink() and not _is_ignored(rules, rel, True):
                    stack.append((entry.path, f"{prefix}{name}/", rules))
                continue
            if _is_ignored(rules, rel, False):
                continue
            if name == DVCIGNORE:
                raise WorkspaceError(
                    f"{DVCIGNORE} file should not be in collected dir path: '{path}'"
                )
            st = entry.stat()
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(f"'{entry.path}' is not a regular file; DVC cannot hash it")
            found.append((prefix + name, entry.path, st))
    return found
