"""The output side of an execution: N producers, one reader, one ordered stream.

Every runtime that pumps output in Python (REST: the stream pump; local: the SDK's
stdout and stderr iterators) feeds one ``OutputPipe``, which implements
``base.Execution``'s output contract. It sits on the hot path of every exec, so it
is lean: a deque, a byte count and two events, no lock (producers and the reader
share one event loop).

- Before ``chunks()`` is called producers never wait (the process must run to its
  end): the earliest ``unread_limit`` bytes are kept and the rest is discarded, also
  what arrives after a late reader shows up (it gets the head, never a head with a
  gap in it).
- Once a reader iterates, producers wait while ``high_water`` bytes are queued; a
  waiting producer stops reading its source, so the process (or server) slows too.
- A reader that stops early (breaks out, is closed) is gone: the queue is dropped
  and later output discarded, so producers never block on it.
- Each producer calls ``close()`` when done; the stream ends when all have.
  ``close(error)`` ends it at once: a reader gets every queued chunk, then the error.
"""

from __future__ import annotations

# asyncio: Events that are cleared and set again (anyio's Event cannot be cleared).
import asyncio
from collections import deque
from collections.abc import AsyncIterator

from ..base import UNREAD_OUTPUT_LIMIT
from ..errors import BoxliteError, InvalidStateError
from ..types import OutputChunk, StreamName

#: Queued bytes at which producers wait for the reader.
HIGH_WATER = 1024 * 1024

# Who reads, and so what a producer does with its bytes:
# _UNREAD  nobody yet: keep up to the unread limit, never wait;
# _CUT     nobody yet, and the unread limit was hit: keep nothing more;
# _READING a reader iterates: keep everything, wait at high water;
# _DRAIN   a reader came after the cut: it gets the head, later output is discarded;
# _GONE    the reader left: discard.
_UNREAD, _CUT, _READING, _DRAIN, _GONE = range(5)


class OutputPipe:
    """Chunks from ``producers`` producers, delivered once, in arrival order."""

    def __init__(
        self,
        producers: int = 1,
        *,
        high_water: int = HIGH_WATER,
        unread_limit: int = UNREAD_OUTPUT_LIMIT,
    ) -> None:
        self._queue: deque[OutputChunk] = deque()
        self._size = 0
        self._open = producers
        self._high_water = high_water
        self._unread_limit = unread_limit
        self._state = _UNREAD
        self._error: BoxliteError | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.discarded_bytes = 0

    async def put(self, stream: StreamName, data: bytes) -> None:
        """Queue output; waits only while a reader is ``high_water`` bytes behind."""
        if not data or not self._open:
            return
        if self._state == _READING and self._size >= self._high_water:
            while self._size >= self._high_water and self._state == _READING:
                self._writable.clear()
                await self._writable.wait()
        if self._state != _READING:  # inline, not a helper: this runs for every chunk
            if self._state != _UNREAD:
                self.discarded_bytes += len(data)
                return
            room = self._unread_limit - self._size
            if room < len(data):
                self._state = _CUT
                self.discarded_bytes += len(data) - max(room, 0)
                if room <= 0:
                    return
                data = data[:room]
        self._queue.append(OutputChunk.model_construct(stream=stream, data=data))
        self._size += len(data)
        self._readable.set()

    def close(self, error: BoxliteError | None = None) -> None:
        """One producer is done; ``error`` ends the stream, raised after the last chunk."""
        if not self._open:
            return
        if error is None:
            self._open -= 1
            if self._open:
                return
        else:
            self._error = error
            self._open = 0
        self._readable.set()

    def chunks(self) -> AsyncIterator[OutputChunk]:
        """The stream of chunks; may be taken once."""
        if self._state == _UNREAD:
            self._state = _READING
        elif self._state == _CUT:
            self._state = _DRAIN
        else:
            raise InvalidStateError("output() was already called for this execution")
        self._writable.set()
        return self._read()

    async def _read(self) -> AsyncIterator[OutputChunk]:
        queue = self._queue
        try:
            while True:
                if queue:
                    chunk = queue.popleft()
                    self._size -= len(chunk.data)
                    if self._size < self._high_water:
                        self._writable.set()
                    yield chunk
                elif not self._open:
                    if self._error is not None:
                        raise self._error
                    return
                else:
                    self._readable.clear()
                    await self._readable.wait()
        finally:
            self._state = _GONE
            self.discarded_bytes += self._size
            queue.clear()
            self._size = 0
            self._writable.set()
