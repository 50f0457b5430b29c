"""md5 of content: a file's bytes as DVC 3 hashes them, and DVC 2.x's `md5-dos2unix` of a
file or of bytes fed in pieces."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol

from executor.errors import WorkspaceError

CHUNK = 1024 * 1024  # md5-dos2unix works per chunk of this size, as DVC does
READ_SIZE = 4 * 1024 * 1024
TEXT_PROBE = 512
_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"


def file_md5(
    path: str | os.PathLike[str], size_hint: int = -1, walked: os.stat_result | None = None
) -> str:
    """md5 hex digest of the file's bytes.

    `size_hint`: the file's size if known (a small file is then read in one call).
    `walked`: the file's stat when it was listed (and its links checked). The file opened
    must be that one: a stage running beside the hashing (`-j`) could otherwise swap it, or
    a folder above it, for a link to a host file between the check and the read."""
    path = os.fspath(path)
    digest = hashlib.md5(usedforsecurity=False)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if walked is not None:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (walked.st_dev, walked.st_ino):
                raise WorkspaceError(
                    f"'{path}' was replaced while it was being hashed; if nothing else "
                    "writes there, run again"
                )
        if 0 <= size_hint < READ_SIZE:
            # One read that also sees EOF: no buffer to allocate for a small file.
            data = os.read(fd, size_hint + 1)
            digest.update(data)
            if len(data) <= size_hint:
                return digest.hexdigest()
        buf = bytearray(READ_SIZE)
        view = memoryview(buf)
        while n := os.readv(fd, [buf]):
            digest.update(view[:n])
    finally:
        os.close(fd)
    return digest.hexdigest()


def istextblock(block: bytes) -> bool:
    """DVC's text heuristic: no NUL, and at most 30% of bytes outside printable ASCII."""
    if not block:
        return True
    if b"\x00" in block:
        return False
    return len(block.translate(None, _TEXT_CHARS)) / len(block) <= 0.30


class Digest(Protocol):
    """What hashlib.md5(data) returns, and Dos2UnixMd5(data)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class Dos2UnixMd5:
    """DVC 2.x `md5-dos2unix` of bytes fed in pieces of any size: each 1 MiB chunk of the
    content that looks like text has CRLF made LF (a CRLF across two chunks stays)."""

    def __init__(self, data: bytes = b"") -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._pending = bytearray()
        self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._pending += data
        while len(self._pending) >= CHUNK:
            self._feed(self._md5, bytes(self._pending[:CHUNK]))
            del self._pending[:CHUNK]

    def hexdigest(self) -> str:
        md5 = self._md5.copy()
        if self._pending:
            self._feed(md5, bytes(self._pending))
        return md5.hexdigest()

    @staticmethod
    def _feed(md5: Any, chunk: bytes) -> None:
        md5.update(chunk.replace(b"\r\n", b"\n") if istextblock(chunk[:TEXT_PROBE]) else chunk)


def file_md5_dos2unix(path: str | os.PathLike[str]) -> str:
    """DVC 2.x `md5-dos2unix` of the file's content."""
    digest = Dos2UnixMd5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
