"""One execution's output, kept for replay, read by any number of cursors.

Positions are per-stream byte offsets (stdout, stderr): a client that knows how
many bytes of each stream it has received resumes exactly after them. Chunks
are kept in production order, so a reader sees both streams interleaved as the
process wrote them. Memory is bounded by ``cap``; the producer waits (flow
control) rather than discard output a recent consumer may still need. No
per-byte work: chunks are sliced and joined, never scanned.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

STDOUT = 0
STDERR = 1
STREAM_NAMES = ("stdout", "stderr")


@dataclass(slots=True)
class _Chunk:
    stream: int
    start: int  # offset of data[0] within its stream
    data: bytes


@dataclass(slots=True)
class Cursor:
    """A reader's position: bytes of each stream delivered, and a scan hint."""

    offsets: list[int]
    index: int = 0  # absolute index of the first chunk not yet fully delivered
    lost: list[int] = field(default_factory=lambda: [0, 0])  # discarded before delivery

    @property
    def event_id(self) -> str:
        return f"{self.offsets[STDOUT]}-{self.offsets[STDERR]}"


class OffsetError(ValueError):
    """A resume position the output never reached."""


class OutputBacklog:
    """Bounded, replayable output of one execution."""

    def __init__(self, cap: int, grace_seconds: float) -> None:
        self._cap = cap
        self._grace = grace_seconds
        self._chunks: deque[_Chunk] = deque()
        self._first = 0  # absolute index of _chunks[0]
        self._retained = 0
        self.produced = [0, 0]
        self._kept_from = [0, 0]  # per stream: offset of the oldest byte kept
        self.closed = False
        self._changed = asyncio.Event()
        self.version = 0  # bumped on every change
        # Flow control: positions (sum of both offsets) of attached consumers.
        self._consumers: dict[int, int] = {}
        self._next_consumer = 0
        self._last_position = 0
        self._detached_at = time.monotonic()

    @property
    def retained(self) -> int:
        """Bytes of output held for replay."""
        return self._retained

    # Producer side.

    async def append(self, stream: int, data: bytes) -> None:
        """Add output; waits while the last consumer is far behind (see module doc)."""
        if not data:
            return
        await self._wait_room()
        self._chunks.append(_Chunk(stream, self.produced[stream], data))
        self.produced[stream] += len(data)
        self._retained += len(data)
        while self._retained > self._cap and len(self._chunks) > 1:
            old = self._chunks.popleft()
            self._first += 1
            self._retained -= len(old.data)
            self._kept_from[old.stream] = old.start + len(old.data)
        self._notify()

    def close(self) -> None:
        """No more output: readers that caught up see the end."""
        self.closed = True
        self._notify()

    async def _wait_room(self) -> None:
        while True:
            head = self.produced[STDOUT] + self.produced[STDERR]
            if head - self._consumer_position() < self._cap // 2:
                return
            if self._consumers:
                await self._wait_changed(None)
                continue
            remaining = self._grace - (time.monotonic() - self._detached_at)
            if remaining <= 0:
                return  # nobody came back: run freely, drop the oldest
            await self._wait_changed(remaining)

    def _consumer_position(self) -> int:
        if self._consumers:
            return max(self._consumers.values())
        return self._last_position

    # Consumer side.

    def open(self, offsets: tuple[int, int] = (0, 0)) -> Cursor:
        """A cursor resuming after ``offsets``; OffsetError if beyond the output."""
        for stream in (STDOUT, STDERR):
            if offsets[stream] < 0 or offsets[stream] > self.produced[stream]:
                raise OffsetError(
                    f"{STREAM_NAMES[stream]} offset {offsets[stream]} is beyond the "
                    f"{self.produced[stream]} bytes this execution has written"
                )
        return Cursor(offsets=[offsets[STDOUT], offsets[STDERR]], index=self._first)

    def attach(self, cursor: Cursor) -> int:
        """Register a consumer for flow control; returns a token for ``detach``."""
        token = self._next_consumer
        self._next_consumer += 1
        self._consumers[token] = sum(cursor.offsets)
        self._notify()
        return token

    def detach(self, token: int) -> None:
        """Unregister a consumer; idempotent."""
        position = self._consumers.pop(token, None)
        if position is None:
            return
        self._last_position = max(self._last_position, position)
        if not self._consumers:
            self._detached_at = time.monotonic()
        self._notify()

    def read(self, cursor: Cursor, max_bytes: int) -> tuple[int, bytes] | None:
        """The next run of one stream's output (up to ``max_bytes``), or None.

        Adjacent chunks of the same stream are joined. Output discarded before
        this cursor got it is skipped and counted in ``cursor.lost``.
        """
        if cursor.index < self._first:
            cursor.index = self._first
        for stream in (STDOUT, STDERR):
            if cursor.offsets[stream] < self._kept_from[stream]:
                cursor.lost[stream] += self._kept_from[stream] - cursor.offsets[stream]
                cursor.offsets[stream] = self._kept_from[stream]
        chunks = self._chunks
        position = cursor.index - self._first
        count = len(chunks)
        # Skip chunks already delivered (a resume may start mid-backlog).
        while position < count:
            chunk = chunks[position]
            if chunk.start + len(chunk.data) > cursor.offsets[chunk.stream]:
                break
            position += 1
        if position >= count:
            cursor.index = self._first + position
            return None
        stream = chunks[position].stream
        pieces: list[bytes] = []
        size = 0
        while position < count and size < max_bytes:
            chunk = chunks[position]
            end = chunk.start + len(chunk.data)
            offset = cursor.offsets[chunk.stream]
            if end <= offset:
                position += 1  # the other stream's, already delivered
                continue
            if chunk.stream != stream:
                break
            begin = offset - chunk.start
            take = min(len(chunk.data) - begin, max_bytes - size)
            piece = (
                chunk.data
                if begin == 0 and take == len(chunk.data)
                else (chunk.data[begin : begin + take])
            )
            pieces.append(piece)
            size += take
            cursor.offsets[stream] += take
            if begin + take == len(chunk.data):
                position += 1
        cursor.index = self._first + position
        return stream, pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def at_end(self, cursor: Cursor) -> bool:
        """True when the output is closed and this cursor has all of it."""
        return self.closed and cursor.offsets == self.produced

    def note_sent(self, token: int, cursor: Cursor) -> None:
        """Record a consumer's progress; lets a waiting producer continue."""
        if token in self._consumers:
            self._consumers[token] = sum(cursor.offsets) + sum(cursor.lost)
            self._notify()

    async def wait(self, seconds: float | None) -> None:
        """Wait for new output, the end, or ``seconds`` (None: no limit)."""
        await self._wait_changed(seconds)

    def wake(self) -> None:
        """Wake every waiter (e.g. a consumer whose client went away)."""
        self._notify()

    def _notify(self) -> None:
        self.version += 1
        event = self._changed
        self._changed = asyncio.Event()
        event.set()

    async def _wait_changed(self, seconds: float | None) -> None:
        event = self._changed
        if seconds is None:
            await event.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
