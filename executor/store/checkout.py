"""Outputs placed into the workspace from the repository's cache, as `dvc checkout` does:
files already right are left alone, the rest replaced whole (by the cache's link types),
and nothing whose content is in no cache is lost without --force."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from executor.confine import inside
from executor.errors import ObjectMissing, UnsavedChanges, WorkspaceError
from executor.hashing.digests import file_md5
from executor.hashing.hasher import Hasher
from executor.hashing.ignore import walk_files
from executor.hashing.objects import parse_manifest
from executor.store.links import TMP_SUFFIX
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
    force: bool = False,
) -> int:
    """Make the output in `root` match its cached objects (only the part `out.only` names,
    if any); the number of files written.

    As `dvc checkout`, it refuses (UnsavedChanges) to replace or delete a workspace file or
    link whose content is in no cache, unless `force`. Files .dvcignore hides are left alone.
    `remember([(path, md5), ...])` is told of the files written (a hash cache need not read
    them). `relink`: the content is known to be right (just committed); files that are not
    yet links to their objects are made so, where the cache's link types link."""
    dest = inside(root, out.path)
    if relink and not cache.links.links_objects:
        return 0
    whole = out.is_dir and not out.only
    if whole and not relink and _unchanged_dir(dest, out.md5, hash_many):
        return 0
    scope = inside(root, f"{out.path}/{out.only}") if out.only else dest
    wanted = _wanted_files(cache, out)
    listed = _workspace_files(scope, root)
    symlinks = {rel for rel, path in listed.items() if os.path.islink(path)}
    linked = _linked_files(cache, scope, wanted)
    current: dict[str, str] = {}
    if not relink:
        current = _contents(listed, linked, symlinks, hash_many)
    if not relink and not force:
        _refuse_unsaved(cache, root, out, wanted, current, listed)
    stale = [
        (_path_in(scope, rel), md5, x)
        for rel, (md5, x) in wanted.items()
        if rel not in linked and (relink or current.get(rel) != md5 or rel in symlinks)
    ]
    _make_room(scope, wanted, listed)
    _copy_all(cache, stale)
    if remember is not None:
        remember([(Path(path), md5) for path, md5, _ in stale])
    if not out.is_dir:
        _set_exec(dest, out.isexec)  # a dir's manifest records no exec bits
    return len(stale)


def _wanted_files(cache: LocalStore, out: Tracked) -> dict[str, tuple[str, bool]]:
    """(md5, isexec) of each file of the output (of the part `out.only` names), by path
    relative to that part; ObjectMissing if the cache lacks any of their objects."""
    wanted = _in_scope(files_of(cache, out), out.only)
    if out.only and not wanted:
        raise WorkspaceError(f"'{out.path}/{out.only}' is not part of the output '{out.path}'")
    md5s = {md5 for md5, _ in wanted.values()}
    absent = md5s - cache.exists_many(md5s)
    if absent:
        raise ObjectMissing(min(absent), str(cache.root))
    return wanted


def _path_in(scope: Path, rel: str) -> str:
    """The path of the file `rel` of the output's part at `scope` ('' for `scope` itself)."""
    return os.path.join(scope, rel) if rel else str(scope)


def _linked_files(cache: LocalStore, scope: Path, wanted: dict[str, tuple[str, bool]]) -> set[str]:
    """The wanted files that already are links to their objects (none unless the cache's
    link types link)."""
    if not cache.links.links_objects:
        return set()
    is_linked = cache.links.is_linked
    return {
        rel
        for rel, (md5, _) in wanted.items()
        if is_linked(_path_in(scope, rel), cache.object_str(md5))
    }


def _make_room(scope: Path, wanted: dict[str, tuple[str, bool]], listed: dict[str, str]) -> None:
    """Make `scope` a folder holding only files the output lists (and those .dvcignore
    hides), or, for a single file, take away a folder in its place."""
    if "" not in wanted:  # a folder: the whole output or a folder inside it
        if scope.is_symlink() or scope.is_file():
            scope.unlink()
        scope.mkdir(parents=True, exist_ok=True)
        # Leaves no symlinked folder inside, so the manifest's paths (checked safe when it
        # was parsed) cannot lead out of the output.
        _remove_extra(scope, set(wanted), set(listed))
    elif scope.is_dir() and not scope.is_symlink():
        shutil.rmtree(scope)


def _in_scope(files: list[tuple[str, str, bool]], only: str) -> dict[str, tuple[str, bool]]:
    """The output's files under `only`, by path relative to it ("" if it is one file)."""
    if not only:
        return {rel: (md5, x) for rel, md5, x in files}
    found = {}
    for rel, md5, x in files:
        if rel == only:
            found[""] = (md5, x)
        elif rel.startswith(only + "/"):
            found[rel[len(only) + 1 :]] = (md5, x)
    return found


def _contents(
    listed: dict[str, str], linked: set[str], symlinks: set[str], hash_many: HashMany
) -> dict[str, str]:
    """md5 of each listed file that is not already linked to its object: through the hash
    cache for files, by reading the target for a symlink (a broken one holds nothing).
    Temporary files of an interrupted checkout hold nothing worth keeping either."""
    files = sorted(
        rel
        for rel, path in listed.items()
        if rel not in linked and rel not in symlinks and not path.endswith(TMP_SUFFIX)
    )
    found = dict(zip(files, hash_many([Path(listed[r]) for r in files]), strict=True))
    for rel in symlinks - linked:
        if os.path.isfile(listed[rel]):
            found[rel] = file_md5(Path(listed[rel]))
    return found


def _workspace_files(dest: Path, root: Path) -> dict[str, str]:
    """Relative path -> path of each file DVC sees at or under `dest` ("" for `dest` itself):
    .dvcignore applied, symlinked folders not entered."""
    if dest.is_symlink() or dest.is_file():
        return {"": str(dest)}
    if not dest.is_dir():
        return {}
    try:
        return {rel: path for rel, path, _ in walk_files(str(dest), str(root))}
    except (WorkspaceError, OSError):  # a pipe, a broken link...: every file counts
        return {
            os.path.relpath(os.path.join(folder, name), dest): os.path.join(folder, name)
            for folder, _, names in os.walk(dest)
            for name in names
        }


def _refuse_unsaved(
    cache: LocalStore,
    root: Path,
    out: Tracked,
    wanted: dict[str, tuple[str, bool]],
    current: dict[str, str],
    listed: dict[str, str],
) -> None:
    """UnsavedChanges if a file that would be replaced or deleted holds content no cache
    object keeps (DVC asks for --force there: it could never be recovered)."""
    doomed = {rel: md5 for rel, md5 in current.items() if wanted.get(rel, ("",))[0] != md5}
    if not doomed:
        return
    saved = cache.exists_many(set(doomed.values()))
    lost = sorted(rel for rel, md5 in doomed.items() if md5 not in saved)
    if lost:
        shown = [Path(os.path.relpath(listed[rel], root)).as_posix() for rel in lost]
        raise UnsavedChanges(shown, [out.path])


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


def _copy_all(cache: LocalStore, files: list[tuple[str, str, bool]]) -> None:
    """Copy each (path, md5, isexec) from the cache, making their folders first. One after
    another: copies of small files are bound by the kernel's file creation, and threads made
    them slower here, not faster."""
    for folder in sorted({os.path.dirname(path) for path, _, _ in files}):
        os.makedirs(folder, exist_ok=True)
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


def _remove_extra(dest: Path, keep: set[str], listed: set[str]) -> None:
    """Delete files under a directory output that its manifest does not list (of those DVC
    sees: `listed`; files .dvcignore hides stay), every symlink, and the folders that this
    emptied. A folder that was empty already stays, as DVC leaves it."""
    emptied: set[str] = set()
    for folder, dirs, names in os.walk(dest, topdown=False):
        rel = os.path.relpath(folder, dest)
        for name in names:
            path = os.path.join(folder, name)
            relpath = name if rel == "." else f"{rel}/{name}"
            if os.path.islink(path) or (relpath in listed and relpath not in keep):
                os.unlink(path)
                emptied.add(folder)
        for name in dirs:
            full = os.path.join(folder, name)
            if os.path.islink(full):
                os.unlink(full)
                emptied.add(folder)
            elif full in emptied and not os.listdir(full):
                os.rmdir(full)
                emptied.add(folder)
