"""Files written whole: through a temporary in the destination's folder and a rename, their
bytes checked against an md5 on the way."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from executor.durable import publish
from executor.errors import CorruptObject
from executor.hashing.digests import Digest

CHUNK = 1024 * 1024


def write_atomic(
    dest: Path,
    source: bytes | Path,
    mode: int,
    expect: str | None = None,
    new_digest: Callable[[bytes], Digest] = hashlib.md5,
) -> None:
    """Create `dest` via a temporary file in its directory and a rename; with `expect`, the
    bytes written must hash to it (CorruptObject otherwise, and `dest` is left untouched)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        digest = new_digest(b"")
        with os.fdopen(fd, "wb") as f:
            if isinstance(source, bytes):
                digest.update(source)
                f.write(source)
            else:
                with open(source, "rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if expect is not None and digest.hexdigest() != expect:
            where = "the data given" if isinstance(source, bytes) else str(source)
            raise CorruptObject(expect, where, digest.hexdigest())
        os.chmod(tmp, mode)
        publish(tmp, dest, synced=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
