"""Outputs placed into the workspace from the repository's cache, as `dvc checkout` does with
its default link type (copy): files already right are left alone, the rest replaced whole."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from executor.confine import inside
from executor.errors import WorkspaceError
from executor.hashing import Hasher, parse_manifest
from executor.store.errors import ObjectMissing
from executor.store.local import LocalStore
from executor.store.tracked import Tracked

# (paths) -> md5 of each, a directory's being its `.dir` hash; `executor run`'s
# Hasher.hash_many fits, with its state cache.
HashMany = Callable[[list[Path]], list[str]]


def hashes_of(hasher: Hasher) -> HashMany:
    return lambda paths: [info.md5 for info in hasher.hash_many(paths)]


def files_of(cache: LocalStore, out: Tracked) -> list[tuple[str, str, bool]]:
    """(relative path, md5, isexec) of each file the output is ('' for a file output)."""
    if not out.is_dir:
        return [("", out.md5, out.isexec)]
    return [(rel, md5, False) for rel, md5 in parse_manifest(cache.get_bytes(out.md5))]


def checkout(
    cache: LocalStore,
    root: Path,
    out: Tracked,
    hash_many: HashMany,
    remember: Callable[[list[tuple[Path, str]]], None] | None = None,
    *,
    relink: bool = False,
) -> int:
    """Make the output in `root` match its cached objects; the number of files written.

    `remember([(path, md5), ...])` is told of the files written (a hash cache need not read
    them). `relink`: the content is known to be right (just committed); files that are not
    yet links to their objects are made so, where the cache's link types link."""
    dest = inside(root, out.path)
    if relink and not cache.links.links_objects:
        return 0
    if out.is_dir and not relink and _unchanged_dir(dest, out.md5, hash_many):
        return 0
    files = files_of(cache, out)
    absent = {md5 for _, md5, _ in files} - cache.exists_many(md5 for _, md5, _ in files)
    if absent:
        raise ObjectMissing(min(absent), str(cache.root))
    if out.is_dir:
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        dest.mkdir(parents=True, exist_ok=True)
        # Leaves no symlinked folder inside, so the manifest's paths (checked safe when it
        # was parsed) cannot lead out of the output.
        _remove_extra(dest, {rel for rel, _, _ in files})
    elif dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    targets = [(os.path.join(dest, rel) if rel else str(dest), md5, x) for rel, md5, x in files]
    stale = _stale(cache, targets, hash_many, relink)
    for folder in sorted({os.path.dirname(path) for path, _, _ in stale}):
        os.makedirs(folder, exist_ok=True)
    _copy_all(cache, stale)
    if remember is not None:
        remember([(Path(path), md5) for path, md5, _ in stale])
    if not out.is_dir:
        _set_exec(dest, out.isexec)  # a dir's manifest records no exec bits
    return len(stale)


def _unchanged_dir(dest: Path, md5: str, hash_many: HashMany) -> bool:
    """Whether the folder already is the output: its tree hash (one walk and one state range
    scan, not a lookup per file) is the recorded one. Files .dvcignore hides are left alone,
    as DVC leaves them."""
    if dest.is_symlink() or not dest.is_dir():
        return False
    try:
        return hash_many([dest]) == [md5]
    except (WorkspaceError, OSError):  # unhashable as it is: replaced file by file below
        return False


def _stale(
    cache: LocalStore, targets: list[tuple[str, str, bool]], hash_many: HashMany, relink: bool
) -> list[tuple[str, str, bool]]:
    """The targets to write: not already linked to their object, and (unless relinking)
    not already holding its content."""
    if cache.links.links_objects:
        is_linked = cache.links.is_linked
        targets = [t for t in targets if not is_linked(t[0], cache.object_str(t[1]))]
    if relink:
        return targets
    present = [t[0] for t in targets if _is_file(t[0])]
    if not present:
        return targets
    md5s = dict(zip(present, hash_many([Path(p) for p in present]), strict=True))
    return [t for t in targets if md5s.get(t[0]) != t[1]]


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _copy_all(cache: LocalStore, files: list[tuple[str, str, bool]]) -> None:
    """Copy each (path, md5, isexec) from the cache. One after another: copies of small files
    are bound by the kernel's file creation, and threads made them slower here, not faster."""
    for path, md5, isexec in files:
        place(cache, path, md5, isexec)


def place(cache: LocalStore, path: str, md5: str, isexec: bool) -> None:
    """Write one file of an output from its cached object (its folder must exist), with the
    cache's link types. DVC sets S_IEXEC (owner only) on an executable copy: 0744, not 0755."""
    cache.links.place(cache.object_str(md5), path, 0o744 if isexec else 0o644, isexec)


def _set_exec(path: Path, isexec: bool) -> None:
    st = path.lstat()
    if not isexec and (stat.S_ISLNK(st.st_mode) or st.st_nlink > 1):
        return  # a linked object: another output may need its exec bit
    mode = stat.S_IMODE(path.stat().st_mode)
    want = mode | stat.S_IEXEC if isexec else mode & ~0o111
    if want != mode:
        os.chmod(path, want)


def _remove_extra(dest: Path, keep: set[str]) -> None:
    """Delete files (and symlinks, and emptied folders) under a directory output that its
    manifest does not list."""
    for folder, dirs, names in os.walk(dest, topdown=False):
        rel = os.path.relpath(folder, dest)
        for name in names:
            if (name if rel == "." else f"{rel}/{name}") not in keep:
                os.unlink(os.path.join(folder, name))
        for name in dirs:
            full = os.path.join(folder, name)
            if os.path.islink(full):
                os.unlink(full)
            elif not os.listdir(full):
                os.rmdir(full)
