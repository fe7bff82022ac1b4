"""The output side of an execution: one producer (the stream pump), one reader.

Implements ``base.Execution``'s output contract on the hot path of every exec, so
it is lean: a deque, a byte count and two events, no lock.

- Before ``chunks()`` is called the producer never waits (the process must run to
  its end): the earliest ``unread_limit`` bytes are kept, the rest discarded.
- Once a reader iterates, the producer waits while ``high_water`` bytes are queued;
  a waiting producer stops reading its socket, so the server slows down too.
- A reader that stops early (breaks out, is closed) is gone: the queue is dropped
  and later output discarded, so the producer never blocks on it.
- ``close(error)`` ends the stream; a reader gets every queued chunk, then the error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from ..base import UNREAD_OUTPUT_LIMIT
from ..errors import BoxliteError, InvalidStateError
from ..types import OutputChunk, StreamName

#: Queued bytes at which the producer waits for the reader.
HIGH_WATER = 1024 * 1024

_UNREAD, _READING, _GONE = 0, 1, 2


class OutputPipe:
    """Chunks in production order, delivered once, with bounded memory."""

    def __init__(
        self, *, high_water: int = HIGH_WATER, unread_limit: int = UNREAD_OUTPUT_LIMIT
    ) -> None:
        self._queue: deque[OutputChunk] = deque()
        self._size = 0
        self._high_water = high_water
        self._unread_limit = unread_limit
        self._state = _UNREAD
        self._closed = False
        self._error: BoxliteError | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.discarded_bytes = 0

    async def put(self, stream: StreamName, data: bytes) -> None:
        """Queue output; waits only while a reader is ``high_water`` bytes behind."""
        if not data or self._closed:
            return
        if self._state == _READING and self._size >= self._high_water:
            while self._size >= self._high_water and self._state == _READING:
                self._writable.clear()
                await self._writable.wait()
        if self._state == _GONE:
            self.discarded_bytes += len(data)
            return
        if self._state == _UNREAD:
            room = self._unread_limit - self._size
            if room < len(data):
                self.discarded_bytes += len(data) - max(room, 0)
                if room <= 0:
                    return
                data = data[:room]
        self._queue.append(OutputChunk.model_construct(stream=stream, data=data))
        self._size += len(data)
        self._readable.set()

    def close(self, error: BoxliteError | None = None) -> None:
        """No more output; ``error``, if any, is raised to the reader after the last chunk."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._readable.set()

    def chunks(self) -> AsyncIterator[OutputChunk]:
        """The stream of chunks; may be taken once."""
        if self._state != _UNREAD:
            raise InvalidStateError("output() was already called for this execution")
        self._state = _READING
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
                elif self._closed:
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
