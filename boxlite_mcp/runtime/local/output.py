"""One ordered, bounded stream of output chunks fed by several producers.

The SDK hands out stdout and stderr as two separate async iterators; an
``OutputBuffer`` merges them into the single stream the runtime contract wants,
with the contract's memory rules (``base.Execution``):

- before anyone reads, producers never wait (the process must run to its end);
  the earliest ``unread_limit`` bytes are kept and the rest is discarded, also
  what arrives after a late reader shows up (it gets the head, never a head with
  a gap in it);
- once a reader iterates, producers wait while ``high_water`` bytes are queued,
  so a slow reader slows them and nothing is dropped;
- a reader that stops early (breaks out of its loop) is treated as gone: the
  queue is emptied and further output discarded, so producers never block on it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from ..base import UNREAD_OUTPUT_LIMIT
from ..errors import InvalidStateError
from ..types import OutputChunk

#: Queued bytes at which a producer waits for the reader.
HIGH_WATER = 1024 * 1024


class OutputBuffer:
    """Chunks from ``producers`` producers, delivered once, in arrival order."""

    def __init__(
        self,
        producers: int,
        *,
        high_water: int = HIGH_WATER,
        unread_limit: int = UNREAD_OUTPUT_LIMIT,
    ) -> None:
        self._queue: deque[OutputChunk] = deque()
        self._size = 0
        self._open = producers
        self._high_water = high_water
        self._unread_limit = unread_limit
        self._state = "unread"  # -> "reading" -> "gone"
        self._truncated = False  # the unread limit was hit: nothing more is kept
        self._changed = asyncio.Condition()
        self.discarded_bytes = 0

    @property
    def finished(self) -> bool:
        """Every producer has closed."""
        return self._open == 0

    async def put(self, chunk: OutputChunk) -> None:
        """Queue a chunk; waits only while a reader is behind by ``high_water`` bytes."""
        if not chunk.data:
            return
        async with self._changed:
            if self._state == "reading":
                await self._changed.wait_for(
                    lambda: self._size < self._high_water or self._state != "reading"
                )
            if self._state == "gone" or self._truncated:
                self.discarded_bytes += len(chunk.data)
                return
            if self._state == "unread":
                room = self._unread_limit - self._size
                if room < len(chunk.data):
                    self._truncated = True
                    self.discarded_bytes += len(chunk.data) - max(room, 0)
                    if room <= 0:
                        return
                    chunk = OutputChunk(stream=chunk.stream, data=chunk.data[:room])
            self._queue.append(chunk)
            self._size += len(chunk.data)
            self._changed.notify_all()

    async def close(self) -> None:
        """One producer is done."""
        async with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def chunks(self) -> AsyncIterator[OutputChunk]:
        """The stream; may be taken once."""
        if self._state != "unread":
            raise InvalidStateError("output() was already called for this execution")
        self._state = "reading"
        return self._read()

    async def _read(self) -> AsyncIterator[OutputChunk]:
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self._queue) or self._open == 0)
                    if not self._queue:
                        return
                    chunk = self._queue.popleft()
                    self._size -= len(chunk.data)
                    self._changed.notify_all()
                yield chunk
        finally:
            await self._abandon()

    async def _abandon(self) -> None:
        async with self._changed:
            self._state = "gone"
            self.discarded_bytes += self._size
            self._queue.clear()
            self._size = 0
            self._changed.notify_all()
