"""The SDK's ``EventStore`` over a state store's event primitives.

The SDK numbers every event it sends on a legacy session's SSE streams and, when a
client reconnects with ``Last-Event-ID``, asks its event store for what followed.
Replay goes on until a look finds nothing newer, because events keep arriving while
earlier ones are sent.

Use it only over a store whose calls do not wait on I/O (``InProcessState``). The
SDK (2.3) registers a resumed stream for live messages only after the replay has
returned and a priming event is stored; a message stored in between is neither
replayed nor sent. In process that window has no ``await`` in it; over Redis it is
two round trips wide and loses messages under load (``tests/sessions/
test_event_store.py`` shows it). Since the SDK resumes streams only within a legacy
session, and a legacy session lives in one replica anyway, the events stay in the
replica's memory even when the rest of the state is in Redis.
"""

from __future__ import annotations

from mcp.server.streamable_http import (
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter

from .base import StateStore


class StateEventStore(EventStore):
    """Events by stream in ``state``; ids name their stream (``<stream>/<n>``)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        payload = (
            None
            if message is None
            else message.model_dump_json(by_alias=True, exclude_unset=True).encode()
        )
        return await self.state.store_event(stream_id, payload)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        found = await self.state.events_after(last_event_id)
        if found is None:
            return None
        stream_id, events = found
        while events:
            for event_id, payload in events:
                message = jsonrpc_message_adapter.validate_json(payload)
                await send_callback(EventMessage(message, event_id))
                last_event_id = event_id
            newer = await self.state.events_after(last_event_id)
            events = newer[1] if newer is not None else []
        return stream_id
