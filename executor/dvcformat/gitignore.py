"""The `.gitignore` lines DVC adds for cached outputs in a git repository (scmrepo's `ignore`).

For each output: `/<name>` in the `.gitignore` beside it, gitignore-escaped, appended on a new
line, once, and only if git does not already ignore the path (a `data/` or `*.bin` rule
elsewhere). Whether git ignores a path is asked of git itself, all paths in one
`git check-ignore` call; without a git executable every line is added.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_GITIGNORE_SPECIAL = "\\[]!*#?"


def entry_for(name: str) -> str:
    """The line DVC writes for an output called `name` in the same directory."""
    if any(c in _GITIGNORE_SPECIAL for c in name):
        from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern  # ~30 ms: lazily

        escaped: str = GitIgnoreSpecPattern.escape(f"/{name}")
        return escaped
    return f"/{name}"


def ignored_by_git(root: Path, paths: list[str]) -> set[str]:
    """Which repository-relative `paths` git ignores by its rules (tracked or not)."""
    if not paths:
        return set()
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "--no-index", "--stdin", "-z"],
            input="\0".join(paths).encode() + b"\0",
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        log.debug("git check-ignore unavailable: %s", exc)
        return set()
    if done.returncode not in (0, 1):  # 1: none is ignored
        log.debug("git check-ignore failed: %s", done.stderr.decode(errors="replace").strip())
        return set()
    return {p.decode() for p in done.stdout.split(b"\0") if p}


def tracked_by_git(root: Path, paths: list[str]) -> set[str]:
    """Which repository-relative `paths` git tracks (a file, or files under a folder): one
    `git ls-files` call; none without a git executable."""
    if not paths:
        return set()
    try:
        done = subprocess.run(
            ["git", "--literal-pathspecs", "-C", str(root), "ls-files", "-z", "--", *paths],
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        log.debug("git ls-files unavailable: %s", exc)
        return set()
    if done.returncode != 0:
        log.debug("git ls-files failed: %s", done.stderr.decode(errors="replace").strip())
        return set()
    files = [f.decode(errors="surrogateescape") for f in done.stdout.split(b"\0") if f]
    return {p for p in paths if any(f == p or f.startswith(p + "/") for f in files)}


def _lines(path: Path) -> tuple[str, list[str]]:
    try:  # any bytes: git reads .gitignore as bytes, and so may a user's editor write it
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    return text, text.splitlines()


def add_entries(root: Path, outputs: Iterable[str]) -> None:
    """Ignore each output (repository-relative) as DVC does, unless git already ignores it."""
    wanted: list[tuple[str, Path, str]] = []
    for rel in dict.fromkeys(outputs):
        path = root / rel
        gitignore, line = path.parent / ".gitignore", entry_for(path.name)
        if line not in _lines(gitignore)[1]:
            wanted.append((rel, gitignore, line))
    ignored = ignored_by_git(root, [rel for rel, _, _ in wanted])
    for rel, gitignore, line in wanted:
        if rel in ignored:
            continue
        text, lines = _lines(gitignore)  # again: an earlier output may share the file
        if line in lines:
            continue
        # DVC starts a new line if the file does not end with one.
        prefix = "\n" if text and not text.endswith("\n") else ""
        with open(gitignore, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(f"{prefix}{line}\n")
