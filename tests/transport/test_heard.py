"""``server/sdk.py`` ``response_heard`` on the wire: whether a legacy request's client listens.

A handshake-era (2025-11-25) streamable-HTTP request outlives its response stream:
the SDK keeps serving it so that the client can resume. The registry lets such a
request keep its box only while ``response_heard`` says its client hears it. Here
a raw HTTP client (so that nothing but the connection tells the server anything:
no cancellation, no DELETE) opens a session, calls a tool that watches the probe,
drops the connection, then resumes the stream with ``Last-Event-ID``. A call run as
a task (answered at once, then polled) is heard for as long as it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer

from boxlite_mcp.server.sdk import response_heard
from boxlite_mcp.settings import Settings
from tests.mcp.test_legacy_tasks import poll, send, start

from .conftest import real_server, serve_settings

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"
WAIT = 10.0


class Watch:
    """What the tool saw, as events the test waits on."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.unheard = anyio.Event()
        self.heard_again = anyio.Event()


def watching_server(watch: Watch) -> MCPServer:
    server: MCPServer = MCPServer("heard")

    @server.tool()
    async def listen(ctx: Context[Any, Any]) -> str:
        """Wait until the client stops hearing this call, then until it hears it again."""
        heard = response_heard(ctx)
        assert heard()
        watch.started.set()
        while heard():  # noqa: ASYNC110 - the transport offers a dict, not an event
            await anyio.sleep(0.02)
        watch.unheard.set()
        while not heard():  # noqa: ASYNC110
            await anyio.sleep(0.02)
        watch.heard_again.set()
        return "heard again"

    return server


def _rpc(id_: int | None, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id_ is not None:
        message["id"] = id_
    if params is not None:
        message["params"] = params
    return message


async def _events(response: httpx.Response) -> Any:
    """``(id, data)`` of each SSE event of ``response``."""
    event_id, data = None, []
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line:
            yield event_id, "\n".join(data)
            event_id, data = None, []


async def test_a_dropped_stream_is_unheard_and_a_resumed_one_heard_again() -> None:
    watch = Watch()
    server = watching_server(watch)
    async with serve_settings(server, Settings(transport="streamable-http")) as port:
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
            opened = await http.post(
                "/mcp",
                json=_rpc(
                    1,
                    "initialize",
                    {
                        "protocolVersion": LEGACY,
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"},
                    },
                ),
                headers=headers,
            )
            assert opened.status_code == 200, opened.text
            headers |= {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": LEGACY,
            }
            done = await http.post(
                "/mcp", json=_rpc(None, "notifications/initialized"), headers=headers
            )
            assert done.status_code == 202
            call = _rpc(2, "tools/call", {"name": "listen", "arguments": {}})
            with anyio.fail_after(WAIT):
                async with http.stream("POST", "/mcp", json=call, headers=headers) as stream:
                    primed, _ = await anext(_events(stream))  # the cursor a resume starts from
                    assert primed
                    await watch.started.wait()
                # The connection is gone, no cancellation sent: the call runs on, unheard.
                await watch.unheard.wait()
                assert not watch.heard_again.is_set()
                resume = {**headers, "Accept": "text/event-stream", "Last-Event-ID": primed}
                async with http.stream("GET", "/mcp", headers=resume) as resumed:
                    async for _, data in _events(resumed):
                        if data and json.loads(data).get("id") == 2:
                            assert json.loads(data)["result"]["content"][0]["text"] == "heard again"
                            break
            assert watch.heard_again.is_set()


async def test_without_a_legacy_http_session_every_call_is_heard() -> None:
    """In memory (and so stdio) and 2026-07-28: the SDK ends those calls itself."""
    seen: list[bool] = []
    server: MCPServer = MCPServer("heard")

    @server.tool()
    async def probe(ctx: Context[Any, Any]) -> str:
        seen.append(response_heard(ctx)())
        return "ok"

    for mode in ("legacy", "auto"):
        async with Client(server, mode=mode) as client:
            await client.call_tool("probe", {})
    async with serve_settings(server, Settings(transport="streamable-http")) as port:
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="auto") as client:
            assert client.protocol_version != LEGACY
            await client.call_tool("probe", {})
    assert seen == [True, True, True]


async def test_a_legacy_task_keeps_its_box_while_it_runs(tmp_path: Path) -> None:
    """A task is answered at once (its request's stream ends) and polled: it attends its
    box for as long as it runs, past the idle TTL, as before tasks were heard."""
    async with real_server(
        tmp_path / "home",
        transport="streamable-http",
        box_idle_ttl_seconds=1.0,
        reap_interval_seconds=0.1,
    ) as (server, _runtime, settings):
        async with serve_settings(server, settings) as port:
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                assert client.protocol_version == LEGACY
                created = await client.call_tool("box_create", {"name": "t"})
                assert not created.is_error
                task_id = await start(client, "exec_run", box="t", command="sleep 2.5; echo done")
                task = await poll(client.session, task_id)
                assert task["status"] == "completed"
                result = await send(client.session, "tasks/result", taskId=task_id)
                assert result["structuredContent"]["exit_code"] == 0
                assert result["structuredContent"]["stdout"] == "done\n"
