"""A bounded, in-memory event store: streamable-HTTP streams survive a dropped connection.

With it the SDK numbers every event it sends on a legacy session's SSE streams, and
a client that loses the connection mid ``exec_run`` reconnects with
``Last-Event-ID`` and gets the progress and the result it missed instead of losing
them. Memory is bounded: the oldest events go first once ``max_bytes`` of stored
messages is exceeded, so a flood of output cannot grow the server without limit; a
client that reconnects after its events were evicted gets nothing replayed (and the
SDK answers as for an unknown event id).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from mcp.server.streamable_http import (
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp_types import JSONRPCMessage

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Event:
    stream_id: StreamId
    message: JSONRPCMessage | None
    size: int


class BoundedEventStore(EventStore):
    """Events by id, oldest evicted first once their total size passes ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._events: OrderedDict[int, _Event] = OrderedDict()
        self._by_stream: dict[StreamId, deque[int]] = {}
        self._next = 0
        self._bytes = 0

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._next += 1
        size = 64 if message is None else len(message.model_dump_json(by_alias=True))
        self._events[self._next] = _Event(stream_id, message, size)
        self._by_stream.setdefault(stream_id, deque()).append(self._next)
        self._bytes += size
        self._evict()
        return str(self._next)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        try:
            last = int(last_event_id)
        except ValueError:
            return None
        event = self._events.get(last)
        if event is None:
            return None
        for event_id in self._by_stream.get(event.stream_id, ()):
            later = self._events.get(event_id)
            if event_id > last and later is not None and later.message is not None:
                await send_callback(EventMessage(later.message, str(event_id)))
        return event.stream_id

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and len(self._events) > 1:
            _, event = self._events.popitem(last=False)
            self._bytes -= event.size
            ids = self._by_stream.get(event.stream_id)
            if ids:
                ids.popleft()  # the oldest of its stream is at its front
                if not ids:
                    del self._by_stream[event.stream_id]
