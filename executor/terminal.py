"""Text a stage controls (its output, its command lines) on the user's terminal."""

from __future__ import annotations

import re

from executor.redact import redact

# C0 controls but tab and newline, DEL, C1 controls (a lone \x9b is a CSI on many terminals),
# and the bidirectional overrides that make text read otherwise than it is.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with control characters written out (ESC as `\\x1b`): a stage's output must not
    move the cursor, clear the screen, retitle the window or reach the terminal's own
    escape handling. Printable text, tabs and newlines are left as they are."""
    return _HIDDEN.sub(_escape, text)


def shown(message: str) -> str:
    """A message for the terminal: no secret (`redact`), no control character (`visible`).
    Error messages quote paths, link targets and remote answers that a stage or a Redis
    writer may have chosen."""
    return visible(redact(message))
