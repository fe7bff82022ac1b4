"""The SDK's resumable streams over the state store: a dropped stream resumes, nothing lost."""

from __future__ import annotations

import json
import socket
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from boxlite_mcp.sessions.state import InProcessState
from boxlite_mcp.sessions.state.event_store import StateEventStore
from tests.transport.conftest import serve_app, tiny_server

pytestmark = pytest.mark.anyio

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
STEPS = 40


async def _initialize(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/mcp",
        headers=HEADERS,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "state-resume-test", "version": "1"},
            },
        },
    )
    response.raise_for_status()
    session = {
        **HEADERS,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    notified = await client.post(
        "/mcp", headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert notified.status_code == 202
    return session


async def _resume_and_count(store: StateEventStore, steps: int) -> None:
    """Drop a streaming call's connection after three events, resume with
    Last-Event-ID, and check that every progress step arrived exactly once."""
    app = tiny_server().streamable_http_app(
        streamable_http_path="/mcp", json_response=False, event_store=store, host="127.0.0.1"
    )
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with sock:
        async with serve_app(app, sock):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                session = await _initialize(client)
                call = {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {
                        "name": "count",
                        "arguments": {"n": steps},
                        "_meta": {"progressToken": "p"},
                    },
                }
                first: list[dict[str, Any]] = []
                last_id = None
                async with aconnect_sse(client, "POST", "/mcp", headers=session, json=call) as es:
                    async for event in es.aiter_sse():
                        if event.data:
                            first.append(json.loads(event.data))
                            last_id = event.id
                        if len(first) >= 3:
                            break  # drop the connection mid-call
                assert last_id is not None and "/" in last_id  # ids name their stream

                rest: list[dict[str, Any]] = []
                resumed = {**session, "last-event-id": last_id}
                async with aconnect_sse(client, "GET", "/mcp", headers=resumed) as es:
                    async for event in es.aiter_sse():
                        if event.data:
                            rest.append(json.loads(event.data))
                        if any(m.get("id") == 2 for m in rest):
                            break
    progress = [
        int(m["params"]["progress"])
        for m in first + rest
        if m.get("method") == "notifications/progress"
    ]
    assert progress == list(range(1, steps + 1))  # none lost, none twice
    result = next(m for m in rest if m.get("id") == 2)["result"]
    assert result["content"][0]["text"] == f"counted {steps}"


async def test_a_dropped_stream_resumes_from_the_state_store() -> None:
    """The in-process store only: over Redis the SDK's replay-to-live window (below)
    loses messages now and then, which is why the event store stays per replica."""
    store = InProcessState(events_per_stream=STEPS * 4)
    await _resume_and_count(StateEventStore(store), steps=STEPS)


class _SlowPriming(InProcessState):
    """The in-process store, but storing a priming event (no message) waits a little,
    as any store that does I/O does."""

    async def store_event(self, stream_id: str, payload: bytes | None) -> str:
        if payload is None:
            await anyio.sleep(0.1)
        return await super().store_event(stream_id, payload)


@pytest.mark.xfail(
    strict=True,
    reason="SDK 2.3: messages stored while a resumed stream's priming event is being "
    "stored are neither replayed nor sent live (why events stay in process)",
)
async def test_sdk_loses_messages_stored_while_a_resumed_stream_is_primed() -> None:
    await _resume_and_count(StateEventStore(_SlowPriming()), steps=100)
