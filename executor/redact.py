"""Secrets kept out of what is printed: a URL's password (redis://:pw@host,
redis://user:pw@host, rediss://, s3://key:secret@..., ?password=...) becomes `***`."""

from __future__ import annotations

import re

# scheme://[user]:password@  ->  scheme://[user]:***@   (the password is everything up to the
# last @ before the host, so a password containing @ or : is hidden whole)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)(?P<pw>[^\s/]*)@")


# ...?password=secret&... or &password=... (redis-py reads a password from the query too)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|access_key|secret_key)=)(?P<pw>[^\s&#]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    text = _USERINFO.sub(lambda m: f"{m['head']}***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", text)


def redact_secret(text: str, secret: str | None) -> str:
    """`text` without URL passwords, nor `secret` (a password given apart from a URL)."""
    text = redact(text)
    return text.replace(secret, "***") if secret else text
