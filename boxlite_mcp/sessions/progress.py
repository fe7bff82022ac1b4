"""Coalesce output chunks into progress notifications, bounded in rate and size.

Output arrives as many small ``(stream, bytes)`` pieces; a client wants a few
readable messages. The coalescer buffers pieces and says when a message is due:
as soon as output appears after a quiet spell, then at most every ``interval``
seconds, sooner when ``chunk_bytes`` are waiting, but never more often than
``MAX_RATE`` per second. One message holds at most ``max_message_bytes`` raw bytes,
so a flood becomes a bounded number of bounded messages.

Text is decoded incrementally (UTF-8, ``errors="replace"``) so a character split
across chunks survives. Each stderr line in a message starts with ``[stderr] ``.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from ..runtime.types import StreamName

STDERR_MARK = "[stderr] "
MAX_RATE = 100.0  # notifications per second, at most
MESSAGE_CHUNKS = 64  # a message holds at most this many chunk_bytes (1 MiB by default)
_LINES = re.compile(r"[^\n]*\n|[^\n]+")


@dataclass(frozen=True)
class Notification:
    progress: int  # output bytes delivered so far (both streams)
    message: str


class Coalescer:
    """Buffers output and decides when to emit; the caller owns time and sending."""

    def __init__(self, chunk_bytes: int, interval: float, max_message_bytes: int | None = None):
        self.chunk_bytes = chunk_bytes
        self.interval = interval
        self.min_gap = 1.0 / MAX_RATE
        self.max_message_bytes = max_message_bytes or chunk_bytes * MESSAGE_CHUNKS
        self._pieces: list[tuple[StreamName, bytes]] = []
        self._pending = 0
        self._delivered = 0
        self._last_emit = -math.inf
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        self._stderr_line_start = True

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def room(self) -> int:
        """How many more bytes fit in the next message."""
        return max(0, self.max_message_bytes - self._pending)

    def add(self, stream: StreamName, data: bytes) -> None:
        if not data:
            return
        if self._pieces and self._pieces[-1][0] == stream:
            self._pieces[-1] = (stream, self._pieces[-1][1] + data)
        else:
            self._pieces.append((stream, data))
        self._pending += len(data)

    def due_in(self, now: float) -> float | None:
        """Seconds until a message is due (0 = now), or None with nothing pending."""
        if not self._pending:
            return None
        since = now - self._last_emit
        wait = self.interval - since
        if self._pending >= self.chunk_bytes:
            wait = min(wait, self.min_gap - since)
        return max(0.0, wait)

    def take(self, now: float, *, final: bool = False) -> Notification | None:
        """The next message (everything buffered), or None if it would be empty."""
        if not self._pending:
            if final:  # a dangling partial character was already counted: drop it
                for decoder in self._decoders.values():
                    decoder.decode(b"", True)
            return None
        parts = [self._render(stream, data) for stream, data in self._pieces]
        if final:
            parts.extend(self._render(stream, b"", final=True) for stream in ("stdout", "stderr"))
        self._delivered += self._pending
        self._pieces.clear()
        self._pending = 0
        self._last_emit = now
        message = "".join(parts)
        return Notification(self._delivered, message) if message else None

    def _render(self, stream: StreamName, data: bytes, *, final: bool = False) -> str:
        text = self._decoders[stream].decode(data, final)
        if stream == "stdout" or not text:
            return text
        out = []
        for line in _LINES.findall(text):
            out.append(STDERR_MARK + line if self._stderr_line_start else line)
            self._stderr_line_start = line.endswith("\n")
        return "".join(out)


async def send_note(
    coalescer: Coalescer,
    report: Callable[[float, float | None, str | None], Awaitable[None]],
    *,
    final: bool = False,
) -> None:
    """Take what is due from ``coalescer`` (everything, when ``final``) and ``report`` it:
    the one step every tool that streams progress repeats."""
    note = coalescer.take(anyio.current_time(), final=final)
    if note is not None:
        await report(note.progress, None, note.message)
