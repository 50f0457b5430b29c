"""Secrets kept out of what is printed: a URL's password (redis://:pw@host,
redis://user:pw@host, rediss://, s3://key:secret@...) becomes `***`."""

from __future__ import annotations

import re

# scheme://[user]:password@  ->  scheme://[user]:***@   (the password is everything up to the
# last @ before the host, so a password containing @ or : is hidden whole)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)(?P<pw>[^\s/]*)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m['head']}***@", text)


def redact_secret(text: str, secret: str | None) -> str:
    """`text` without URL passwords, nor `secret` (a password given apart from a URL)."""
    text = redact(text)
    return text.replace(secret, "***") if secret else text
