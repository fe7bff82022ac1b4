"""The SDK's ``EventStore`` over a state store: a dropped stream resumes on any replica.

The SDK numbers every event it sends on a legacy session's SSE streams and, when a
client reconnects with ``Last-Event-ID``, asks its event store for what followed.
This adapter keeps those events in the ``StateStore`` (messages as the JSON the
SDK itself sends), so with Redis the replica the client reconnects to can replay
them, and with the in-process store it behaves like the bounded store before it:
an evicted or unknown event id replays nothing.
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
        for event_id, payload in events:
            message = jsonrpc_message_adapter.validate_json(payload)
            await send_callback(EventMessage(message, event_id))
        return stream_id
