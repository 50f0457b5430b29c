"""Stage outputs in a workspace: remove (or unprotect) before a run, hash and store after,
check out on a hit."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from executor.confine import inside, parent_fd
from executor.dvcformat.entry import lock_item
from executor.errors import OutputMissing, WorkspaceError
from executor.hashing.hasher import Hasher, Seen
from executor.hashing.objects import HashInfo
from executor.jobspec import OutRequest
from executor.pipeline.model import repo_path
from executor.store.base import ObjectStore
from executor.store.cachecheck import drop_corrupt
from executor.store.checkout import checkout, hashes_of
from executor.store.links import unprotect
from executor.store.local import LocalStore
from executor.store.tracked import Tracked


def _lstat_at(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@contextmanager
def _output_at(root: Path, rel: str) -> Iterator[tuple[int, str, os.stat_result] | None]:
    """The output at `rel` as its folder's descriptor, its name there and its lstat, held
    for the block (`parent_fd`: no folder on the way swapped for a link); None if absent."""
    with parent_fd(root, rel) as found:
        st = _lstat_at(*found) if found is not None else None
        yield None if found is None or st is None else (found[0], found[1], st)


def remove_output(root: Path, rel: str) -> None:
    """Delete an output before its stage runs (a file, a link or a whole directory), through
    descriptors: other stages may be running in the same repository."""
    with _output_at(root, rel) as found:
        if found is None:
            return
        fd, name, st = found
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)


def chown_outputs(root: Path, rels: Iterable[str], uid: int, gid: int) -> None:
    """Give outputs a stage wrote as another user (a root caller's stages run unprivileged)
    to the caller, as `dvc repro` leaves them. Links are changed, not what they point to,
    and folders are walked through descriptors, never through a link."""

    def give(name: str, fd: int) -> None:
        st = _lstat_at(fd, name)
        if st is not None and (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)

    for rel in rels:
        with _output_at(root, rel) as found:
            if found is None:
                continue
            fd, name, st = found
            give(name, fd)
            if stat.S_ISDIR(st.st_mode):
                for _, dirnames, filenames, dirfd in os.fwalk(name, dir_fd=fd):
                    for child in (*dirnames, *filenames):
                        give(child, dirfd)


def unprotect_output(root: Path, rel: str, cache: Path | None = None) -> None:
    """Before a cached `persist` output's stage runs: files linked to cache objects
    (cache.type hardlink or symlink, by executor or DVC) become copies of their own, so the
    command changes them and never an object, as DVC unprotects them."""
    path = inside(root, rel)
    if os.path.lexists(path):
        within = (os.path.realpath(root),)
        unprotect(path, within + ((os.path.realpath(cache),) if cache else ()))


def commit_output(store: ObjectStore, hasher: Hasher, path: Path) -> HashInfo:
    """Hash an output and store its objects (a directory's manifest and every file in it)."""
    # The workspace will be linked to these objects (cache.type): they must be right.
    cache = store if isinstance(store, LocalStore) and store.links.links_objects else None
    # Each file is read once: the store copies it knowing the md5 of the version hashed.
    seen: Seen = {}
    if path.is_dir():
        info, entries, manifest = hasher.hash_tree(path, seen)
        if cache is not None:
            drop_corrupt(cache, (e.md5 for e in entries))
        present = store.exists_many({e.md5 for e in entries})
        base = os.path.abspath(path)
        todo = {e.md5: os.path.join(base, e.relpath) for e in entries if e.md5 not in present}

        def put(md5: str, file: str) -> None:
            # exists_many already asked: no per-object existence request (a HEAD on S3).
            store.put_file(md5, Path(file), check=False, seen=seen.get(file))

        if len(todo) > 8:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(put, todo.keys(), todo.values()))
        else:
            for md5, file in todo.items():
                put(md5, file)
        store.put_bytes(info.md5, manifest)
        return info
    if not path.exists():
        raise FileNotFoundError(path)
    info = hasher.hash_file(path, seen)
    if cache is not None:
        drop_corrupt(cache, [info.md5])
    store.put_file(info.md5, path, seen=seen.get(os.path.abspath(path)))
    return info


def store_outputs(
    stage: str,
    outs: tuple[OutRequest, ...],
    workspace: Path,
    store: ObjectStore,
    hasher: Hasher,
    *,
    commit: bool,
) -> list[dict[str, Any]]:
    """Lock items of a stage's outputs; committed ones are stored (OutputMissing if absent)."""
    items = []
    for out in outs:
        path = inside(workspace, out.repo_path)
        if not path.exists():
            raise OutputMissing(stage, out.path)
        links = _links_checked(workspace, path, stage, out.path)
        if out.committed and commit:
            _materialise(links)
        # The container has exited: remember these md5s, so the next run reads nothing.
        with hasher.settled():
            info = _hash_or_commit(workspace, out, path, store, hasher, commit)
            items.append(lock_item(out.path, info))
    return items


def commit_data(store: ObjectStore, hasher: Hasher, root: Path, rel: str) -> HashInfo:
    """Commit a `.dvc` file's data as DVC's commit does: stored, and linked back where
    cache.type links."""
    out = OutRequest(rel, rel, committed=True)
    return _hash_or_commit(root, out, inside(root, rel), store, hasher, commit=True)


def _hash_or_commit(
    root: Path, out: OutRequest, path: Path, store: ObjectStore, hasher: Hasher, commit: bool
) -> HashInfo:
    if not (out.committed and commit):
        return hasher.hash_path(path)
    info = commit_output(store, hasher, path)
    if isinstance(store, LocalStore) and store.links.links_objects and out.cached:
        # DVC's commit links the workspace files to their new objects (cache.type hardlink
        # or symlink): no second copy of the data. Persist outputs too: they are made copies
        # of their own again (unprotect_output) before their stage next changes them. A
        # `cache: false` metric or plot is only copied in for the run-cache, as DVC does.
        tracked = Tracked(out.repo_path, info.md5, info.isexec)
        checkout(store, root, tracked, hashes_of(hasher), hasher.remember, relink=True)
    return info


def _links_checked(root: Path, path: Path, stage: str, out: str) -> list[Path]:
    """Symlinks in an output; WorkspaceError if one leads outside the repository.

    The command ran in a container, but hashing happens on the host: a link the stage made
    to a host path must never be followed, or a host file would reach the cache and remotes.
    """
    links = [path] if path.is_symlink() else []
    if path.is_dir() and not path.is_symlink():
        for folder, dirnames, filenames in os.walk(path):
            links += [
                Path(folder, n)
                for n in (*dirnames, *filenames)
                if os.path.islink(os.path.join(folder, n))
            ]
    real_root = os.path.realpath(root)
    for link in links:
        real = os.path.realpath(link)
        if real != real_root and not real.startswith(real_root + os.sep):
            shown = link.relative_to(root).as_posix()
            raise WorkspaceError(
                f"stage '{stage}': output '{out}' holds '{shown}', a symlink leading outside "
                f"the repository (to {os.readlink(link)}); outputs may only link inside it"
            )
    return links


def _materialise(links: list[Path]) -> None:
    """Replace links to files by copies, as DVC's commit-then-checkout leaves them."""
    for link in links:
        target = os.path.realpath(link)
        if os.path.isfile(target):
            tmp = link.with_name(f".{link.name}.executor-copy")
            shutil.copy2(target, tmp)
            os.replace(tmp, link)


def checkout_output(
    store: LocalStore,
    root: Path,
    rel: str,
    item: Mapping[str, Any],
    hasher: Hasher,
    *,
    cached: bool = True,
) -> None:
    """Recreate an output from the local cache as its lock item describes it (files already
    right are left alone), telling the hasher what it wrote so no later run reads it.
    A `cache: false` output (`cached=False`) is a copy whatever cache.type says, as DVC's
    run-cache restores it: a file of its own that git can track."""
    out = Tracked(path=rel, md5=str(item["md5"]), isexec=bool(item.get("isexec", False)))
    if not cached:
        store = store.copying()
    # As dvc repro: a stage's outputs are its own to replace (they are removed before a run).
    if "hash" in item:
        checkout(store, root, out, hashes_of(hasher), hasher.remember, force=True)
    else:  # written by DVC 2.x: md5-dos2unix objects, which the hash cache must not learn
        legacy = store.legacy_view()
        checkout(legacy, root, out, lambda paths: [hasher.legacy_md5(p) for p in paths], force=True)


def checkout_entry(
    store: LocalStore,
    root: Path,
    hasher: Hasher,
    *,
    wdir: str,
    outs: Iterable[Mapping[str, Any]],
    cached: Mapping[str, bool],
) -> None:
    """Check out every output of a run-cache or lock entry of the stage in `wdir`, from the
    local cache: how a result lands in the workspace, whether it was restored, or ran on a
    fleet. `cached`: each output path's `cache` flag (checkout_output)."""
    for item in outs:
        rel = str(item["path"])
        path = repo_path(wdir, rel)
        checkout_output(store, root, path, item, hasher, cached=cached.get(rel, True))
