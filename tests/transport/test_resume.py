"""A streamable-HTTP client that loses its connection mid exec_run resumes with Last-Event-ID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from boxlite_mcp.transport.event_store import BoundedEventStore

from .conftest import real_server, serve_settings

pytestmark = pytest.mark.anyio

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SCRIPT = "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done"


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
                "clientInfo": {"name": "resume-test", "version": "1"},
            },
        },
    )
    response.raise_for_status()
    session = {**HEADERS, "mcp-session-id": response.headers["mcp-session-id"],
               "mcp-protocol-version": "2025-11-25"}  # fmt: skip
    notified = await client.post(
        "/mcp", headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert notified.status_code == 202
    return session


async def test_dropped_stream_resumes_without_losing_output(tmp_path: Path) -> None:
    async with real_server(tmp_path / "home", transport="streamable-http") as (server, _, settings):
        async with serve_settings(server, settings) as port:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                session = await _initialize(client)
                call = {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {
                        "name": "exec_run",
                        "arguments": {"box": "b", "command": SCRIPT},
                        "_meta": {"progressToken": "p"},
                    },
                }
                created = await client.post(
                    "/mcp",
                    headers=session,
                    json={"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                          "params": {"name": "box_create", "arguments": {"name": "b"}}},
                )  # fmt: skip
                assert created.status_code == 200 and '"isError":false' in created.text

                first: list[dict[str, Any]] = []
                last_id = None
                async with aconnect_sse(client, "POST", "/mcp", headers=session, json=call) as es:
                    async for event in es.aiter_sse():
                        if event.data:
                            first.append(json.loads(event.data))
                            last_id = event.id
                        if sum(m.get("method") == "notifications/progress" for m in first) >= 2:
                            break  # drop the connection mid-exec
                assert last_id, "the server numbered no events: no event store?"

                rest: list[dict[str, Any]] = []
                resumed = {**session, "last-event-id": last_id}
                async with aconnect_sse(client, "GET", "/mcp", headers=resumed) as es:
                    async for event in es.aiter_sse():
                        if event.data:
                            rest.append(json.loads(event.data))
                        if any(m.get("id") == 2 for m in rest):
                            break

    result = next(m for m in rest if m.get("id") == 2)["result"]
    assert result["structuredContent"]["exit_code"] == 0
    streamed = "".join(
        m["params"]["message"] for m in first + rest if m.get("method") == "notifications/progress"
    )
    assert [f"line{i}" for i in range(1, 7)] == streamed.split()
    assert not any(m.get("id") == 2 for m in first)


async def test_store_replays_only_later_events_of_the_same_stream() -> None:
    from mcp_types import JSONRPCNotification

    store = BoundedEventStore(max_bytes=10_000)

    def note(n: int) -> JSONRPCNotification:
        return JSONRPCNotification(jsonrpc="2.0", method=f"m{n}")

    ids = [await store.store_event("a", note(i)) for i in range(3)]
    await store.store_event("b", note(99))
    got: list[str] = []

    async def collect(event: Any) -> None:
        got.append(event.message.method)

    assert await store.replay_events_after(ids[0], collect) == "a"
    assert got == ["m1", "m2"]
    assert await store.replay_events_after("not-a-number", collect) is None


async def test_store_stays_within_its_byte_budget() -> None:
    from mcp_types import JSONRPCNotification

    store = BoundedEventStore(max_bytes=2_000)
    message = JSONRPCNotification(jsonrpc="2.0", method="x" * 500)
    ids = [await store.store_event("s", message) for _ in range(50)]
    assert store._bytes <= 2_000
    evicted: list[Any] = []
    assert await store.replay_events_after(ids[0], evicted.append) is None  # type: ignore[arg-type]
