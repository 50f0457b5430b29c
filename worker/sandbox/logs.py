"""Turn a container's output chunks into lines: a callback per line, a bounded tail kept."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable

from worker.sandbox.driver import Invocation

log = logging.getLogger(__name__)

TAIL_LINES = 20
MAX_LINE = 8192  # longer lines are cut (in the tail) or split (a line with no newline)


class LogCollector:
    """Splits chunks into lines, hides the driver's failure marker and keeps the last lines."""

    def __init__(
        self,
        invocation: Invocation,
        on_log: Callable[[str], None] | None,
        on_line: Callable[[int], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._invocation = invocation
        self._on_log = on_log
        self._on_line = on_line
        self._partial = (bytearray(), bytearray())  # stdout, stderr: lines never mix
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.started = False  # the driver ran
        self.failure: tuple[int, int] | None = None  # (1-based line index, code) from the driver
        self._ended = [False, False]  # the driver's end marker seen on stdout, on stderr
        self.ended = False  # on both: every line succeeded and all the output is in
        self._on_end = on_end

    def feed(self, chunk: bytes, stream: int = 0) -> None:
        partial = self._partial[stream]
        partial += chunk
        while True:
            cut = partial.find(b"\n")
            if cut < 0:
                if len(partial) > MAX_LINE:
                    cut = MAX_LINE - 1
                else:
                    return
            raw = bytes(partial[: cut + 1])
            del partial[: cut + 1]
            self._line(raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace"), stream)

    def close(self) -> None:
        """Flush last lines that had no newline."""
        for stream, partial in enumerate(self._partial):
            if partial:
                raw = bytes(partial)
                partial.clear()
                self._line(raw.decode("utf-8", errors="replace"), stream)

    def pump(self, frames: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Feed (stdout, stderr) frames until the stream ends, then close; errors end it too."""
        try:
            for out, err in frames:
                if out:
                    self.feed(out, 0)
                if err:
                    self.feed(err, 1)
        except Exception as exc:  # the container is gone, or the daemon closed the stream
            log.debug("output stream ended: %s", exc)
        finally:
            self.close()

    def _line(self, text: str, stream: int = 0) -> None:
        marker = self._invocation.marker
        at = text.find(marker)
        if at >= 0 and self._invocation.is_end(text[at:]):
            self._ended[stream] = True
            if text[:at]:  # a last line without a newline: it is output, shown before the end
                self._keep(text[:at])
            if all(self._ended) and not self.ended:
                self.ended = True
                if self._on_end is not None:
                    self._on_end()
            return
        if at >= 0:
            index = self._invocation.find_start(text[at:])
            found = self._invocation.find(text[at:])
            if index is not None and self._on_line is not None:
                try:
                    self._on_line(index)
                except Exception:
                    log.exception("on_line callback failed")
            if found == (0, 0):
                self.started = True
            elif found is not None:
                self.failure = found
            text = text[:at]
            if not text:
                return
        self._keep(text)

    def _keep(self, text: str) -> None:
        self._tail.append(text[:MAX_LINE])
        if self._on_log is not None:
            try:
                self._on_log(text)
            except Exception:
                log.exception("on_log callback failed; output keeps being collected")

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)
