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
from contextlib import suppress
from dataclasses import dataclass

from executor.confine import check_link
from executor.errors import WorkspaceError

DVCIGNORE = ".dvcignore"
DEFAULT_PATTERNS = (".hg/", ".git/", ".git", ".dvc/")
_IGNORED_DIRS = frozenset({".git", ".hg", ".dvc"})  # DEFAULT_PATTERNS without a .dvcignore
_IGNORED_FILES = frozenset({".git"})

# (relative path of the file from the walked directory, its path, its stat with links followed)
WalkedFile = tuple[str, str, os.stat_result]


class IgnoreRules:
    """Gitignore patterns anchored at the repository root; the last matching pattern wins."""

    def __init__(self, patterns: Sequence[str]) -> None:
        # pathspec is imported only when a `.dvcignore` has patterns: it costs ~30 ms.
        from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

        self.patterns = tuple(patterns)
        runs: list[tuple[list[str], bool, bool]] = []  # consecutive patterns of one kind
        for pattern in self.patterns:
            regex, ignore = GitIgnoreSpecPattern.pattern_to_regex(pattern)
            if regex is None or ignore is None:
                continue
            regex = regex.replace("(?P<ps_d>", "(?:")  # named groups can't repeat in one regex
            kind = (ignore, pattern.endswith("/"))
            if runs and runs[-1][1:] == kind:
                runs[-1][0].append(regex)
            else:
                runs.append(([regex], *kind))
        # Within a run any match gives the same answer, so each run is one regex.
        self._newest_first = [
            (re.compile("|".join(f"(?:{r})" for r in regexes)), ignore, dir_only)
            for regexes, ignore, dir_only in reversed(runs)
        ]

    def with_file(self, dir_rel: str, lines: Sequence[str]) -> IgnoreRules:
        """These rules followed by a `.dvcignore` found in `dir_rel` ('' for the root)."""
        added = lines if not dir_rel else [_rebase(line, dir_rel) for line in lines]
        return IgnoreRules([*self.patterns, *added])

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the root-relative posix path `rel`, or a directory above it, is ignored."""
        parts = rel.split("/")
        return any(
            self.matches("/".join(parts[:i]), is_dir or i < len(parts))
            for i in range(1, len(parts) + 1)
        )

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Whether the last pattern matching `rel` itself ignores it."""
        candidates = (rel, rel + "/") if is_dir else (rel,)
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


def _rules_at(
    top: str, root: str | None, fresh_after: int | None = None
) -> tuple[IgnoreRules | None, str | None]:
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
        rules = _updated(rules, root, here, fresh_after)
    return rules, rel


def _updated(
    rules: IgnoreRules | None, root: str, dir_rel: str, fresh_after: int | None = None
) -> IgnoreRules | None:
    path = os.path.join(root, dir_rel, DVCIGNORE)
    if not os.path.isfile(path) or _is_ignored(rules, _rel(dir_rel, DVCIGNORE), False):
        return rules
    _check_settled(path, fresh_after)
    lines = _read_lines(path)
    if not lines:  # `dvc init` writes one holding only comments
        return rules
    base = rules if rules is not None else IgnoreRules(DEFAULT_PATTERNS)
    return base.with_file(dir_rel, lines)


def _is_ignored(rules: IgnoreRules | None, rel: str, is_dir: bool) -> bool:
    if rules is None:
        return rel.rpartition("/")[2] in (_IGNORED_DIRS if is_dir else _IGNORED_FILES)
    return rules.ignored(rel, is_dir)


SUBREPO_MARK = ".dvc"  # a folder holding one is a DVC repository of its own


def rules_in(root: str, dir_rel: str, rules: IgnoreRules | None) -> IgnoreRules | None:
    """`rules` followed by the `.dvcignore` of the folder `dir_rel` ('' for the root)."""
    return _updated(rules, root, dir_rel)


def _check_settled(path: str, fresh_after: int | None) -> None:
    """WorkspaceError if the `.dvcignore` or `.dvc` at `path` changed after `fresh_after`.

    Either one hides files from hashing. Made by a stage in another stage's dependency folder,
    it would hide files planted there: that stage's command would read them while its
    run-cache key, computed without them, names the genuine inputs. The inode's ctime is the
    kernel's and no process can set it back."""
    if fresh_after is None:
        return
    st = os.lstat(path)
    fresh = st.st_ctime_ns >= fresh_after
    if stat.S_ISLNK(st.st_mode):  # what the link leads to decides as much as the link
        with suppress(OSError):
            fresh = fresh or os.stat(path).st_ctime_ns >= fresh_after
    elif fresh and stat.S_ISDIR(st.st_mode) and _old_project(path, fresh_after):
        fresh = False  # a nested project that was there already, used (`dvc pull` in it)
    if fresh:
        name = os.path.basename(path)
        raise WorkspaceError(
            f"'{path}' was created or changed while this run's stages ran; a {name} "
            "decides which files DVC hashes, so no stage may write one: remove it (and any "
            "file it hides) and make the stage write only its outputs"
        )


def _old_project(mark: str, fresh_after: int) -> bool:
    """Whether the `.dvc` folder `mark` holds the `config` of a project made before
    `fresh_after`: its contents change as DVC is used in it, but no process can give a
    file it makes, links or moves there an older ctime."""
    try:
        config = os.lstat(os.path.join(mark, "config"))
    except OSError:
        return False
    return stat.S_ISREG(config.st_mode) and config.st_ctime_ns < fresh_after


def skipped(rules: IgnoreRules | None, rel: str, is_dir: bool) -> bool:
    """Whether a walk that has entered the folder of `rel` skips `rel` (a root-relative path)."""
    if rules is None:
        return rel.rpartition("/")[2] in (_IGNORED_DIRS if is_dir else _IGNORED_FILES)
    return rules.matches(rel, is_dir)


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder the walk will enter."""

    path: str
    prefix: str  # its path relative to the walked directory, "/" after it ('' for that one)
    rules: IgnoreRules | None  # rules in force above it: its own .dvcignore is not read yet


def walk_files(
    top: str,
    root: str | None,
    within: tuple[str, ...] | None = None,
    fresh_after: int | None = None,
) -> list[WalkedFile]:
    """Every file DVC would list under the directory `top` of the repository at `root`.

    `within`: real paths a symlink among the files may lead into (the repository and its
    cache); one leading elsewhere is a WorkspaceError, never followed. A stage can plant
    such a link in a folder it may write, and hashing happens on the host: following it
    would put a host file's md5 in dvc.lock, or its bytes in the cache and remotes.

    `fresh_after`: a time (ns) since when no `.dvcignore` or nested `.dvc` that hides files may
    have appeared or changed (see _check_settled); None: no such check."""
    rules_top, rel_top = _rules_at(top, root, fresh_after)
    if _lists_nothing(top, rules_top, rel_top, fresh_after):
        return []
    found: list[WalkedFile] = []
    stack = [_Folder(top, "", rules_top)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder.path) as it:
            entries = list(it)
        names = {entry.name for entry in entries}
        # A nested DVC repository. `top` itself was checked above only when it is a direct
        # child of the root: DVC finds the others only from the folder above them.
        if folder.prefix and SUBREPO_MARK in names:
            _check_settled(os.path.join(folder.path, SUBREPO_MARK), fresh_after)
            continue
        rel_dir = _rel(rel_top, folder.prefix.rstrip("/")) if rel_top is not None else ""
        rules = folder.rules
        if root is not None and rel_top is not None and DVCIGNORE in names:
            rules = _updated(rules, root, rel_dir, fresh_after)
        files, subfolders = _kept_entries(entries, folder, rules, rel_dir, within)
        found.extend(files)
        stack.extend(subfolders)
    return found


def _lists_nothing(
    top: str, rules_top: IgnoreRules | None, rel_top: str | None, fresh_after: int | None
) -> bool:
    """Whether DVC lists no file under `top` whatever it holds (`rules_top`, `rel_top`: as
    _rules_at gives them)."""
    if rules_top is not None and rel_top and rules_top.ignored(rel_top, True):
        return True  # DVC filters out every file below an ignored directory
    if rel_top and "/" not in rel_top and os.path.exists(os.path.join(top, SUBREPO_MARK)):
        _check_settled(os.path.join(top, SUBREPO_MARK), fresh_after)
        return True  # DVC ignores the subrepos directly below the root from the start
    return False


def _kept_entries(
    entries: list[os.DirEntry[str]],
    folder: _Folder,
    rules: IgnoreRules | None,
    rel_dir: str,
    within: tuple[str, ...] | None,
) -> tuple[list[WalkedFile], list[_Folder]]:
    """The files DVC lists among the entries of `folder` (whose rules in force are `rules`,
    root-relative path `rel_dir`), and the subfolders it enters."""
    files: list[WalkedFile] = []
    subfolders: list[_Folder] = []
    # Directories above were checked before entering them, so each name needs only its own
    # match: rules from a deeper .dvcignore are anchored below it. The checks are written out
    # rather than calling skipped(): this loop runs once per file of every hashed folder.
    for entry in entries:
        name = entry.name
        if entry.is_dir():
            # os.walk lists a link to a directory as a directory, and never enters it.
            if entry.is_symlink():
                continue
            if name in _IGNORED_DIRS if rules is None else rules.matches(_rel(rel_dir, name), True):
                continue
            subfolders.append(_Folder(entry.path, f"{folder.prefix}{name}/", rules))
            continue
        if name in _IGNORED_FILES if rules is None else rules.matches(_rel(rel_dir, name), False):
            continue
        if name == DVCIGNORE:
            raise WorkspaceError(
                f"{DVCIGNORE} file should not be in collected dir path: '{folder.path}'"
            )
        if within is not None and entry.is_symlink():
            check_link(entry.path, within)
        st = entry.stat()
        if not stat.S_ISREG(st.st_mode):
            raise WorkspaceError(f"'{entry.path}' is not a regular file; DVC cannot hash it")
        files.append((folder.prefix + name, entry.path, st))
    return files, subfolders
