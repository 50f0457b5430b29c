"""DVC's check of a local cache before it links objects into a workspace: read-only
(protected) objects are trusted, writable ones hashed, since a hardlinked workspace file
after `chmod +w` may have changed them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from executor.hashing.digests import file_md5, file_md5_dos2unix
from executor.store.base import content_md5
from executor.store.local import LocalStore


def drop_corrupt(cache: LocalStore, md5s: Iterable[str]) -> set[str]:
    """Objects someone made writable and changed: removed, as DVC's cache check removes them,
    so they are stored or fetched again instead of linked to; those dropped. Read-only
    objects cost one stat each."""
    hash_file = file_md5_dos2unix if cache.legacy else file_md5
    dropped = set()
    for md5 in set(md5s):
        path = cache.object_str(md5)
        try:
            writable = os.stat(path).st_mode & 0o222
        except FileNotFoundError:
            continue
        if not writable:
            continue
        if hash_file(path) != content_md5(md5):
            os.unlink(path)
            dropped.add(md5)
        else:  # intact: read-only again, so the next check is one stat (DVC protects it)
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o222)
    return dropped


def verify_writable(cache: LocalStore, md5s: Iterable[str]) -> bool:
    """Whether every object is present and intact (`drop_corrupt` removed none)."""
    wanted = set(md5s)
    return not drop_corrupt(cache, wanted) and cache.exists_many(wanted) == wanted
