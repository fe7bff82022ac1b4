"""Both HTTP transports serve real clients, with progress streamed (never plain JSON)."""

from __future__ import annotations

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client

from boxlite_mcp.settings import Settings

from .conftest import serve_settings, tiny_server

pytestmark = pytest.mark.anyio


async def _count_with_progress(client: Client) -> tuple[str, list[tuple[float, str | None]]]:
    seen: list[tuple[float, str | None]] = []
    all_seen = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))
        if len(seen) == 5:
            all_seen.set()

    result = await client.call_tool("count", {"n": 5}, progress_callback=on_progress)
    with anyio.fail_after(5):  # callbacks may still be running when the result is in
        await all_seen.wait()
    return result.content[0].text, seen  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_streams_progress(mode: str) -> None:
    async with serve_settings(tiny_server(), Settings(transport="streamable-http")) as port:
        async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"whoami", "count"}
            text, seen = await _count_with_progress(client)
    assert text == "counted 5"
    assert sorted(seen) == [(i, f"step {i}") for i in range(1, 6)]


async def test_sse_smoke() -> None:
    async with serve_settings(tiny_server(), Settings(transport="sse")) as port:
        async with Client(sse_client(f"http://127.0.0.1:{port}/sse"), mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "count" in names
            text, seen = await _count_with_progress(client)
    assert text == "counted 5"
    assert sorted(seen) == [(i, f"step {i}") for i in range(1, 6)]
