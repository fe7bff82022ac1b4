"""The real server over streamable HTTP: two clients at once, isolation, cleanup on DELETE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, TextContent

from boxlite_mcp.transport.auth import StaticTokenVerifier

from .conftest import real_server, serve_settings

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def _client(url: str, mode: str, token: str | None = None) -> Client:
    if token is None:
        return Client(url, mode=mode)
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def _ok(client: Client, tool: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args, **kw)
    assert not result.is_error, _text(result)
    return dict(result.structured_content or {})


async def _create_and_run(client: Client, name: str, out: dict[str, Any]) -> None:
    """Create a box and run a command in it with progress, recording what came back."""
    created = await _ok(client, "box_create", {"name": name})
    messages: list[tuple[float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append((progress, message or ""))

    ran = await _ok(
        client,
        "exec_run",
        {"box": name, "command": f"for i in 1 2 3; do echo {name}-$i; sleep 0.1; done"},
        progress_callback=on_progress,
    )
    out[name] = {"id": created["box"]["id"], "run": ran, "progress": messages}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_two_clients_at_once_see_only_their_own_boxes(tmp_path: Path, mode: str) -> None:
    # Legacy sessions tell clients apart by mcp-session-id; the 2026 protocol has no
    # sessions, so there two clients are two owners only through their bearer tokens.
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"}) if mode == "auto" else None
    tokens = (ALICE, BOB) if verifier else (None, None)
    async with real_server(tmp_path / "home", transport="streamable-http") as (
        server,
        _runtime,
        settings,
    ):
        async with serve_settings(server, settings, verifier) as port:
            url = f"http://127.0.0.1:{port}/mcp"
            async with _client(url, mode, tokens[0]) as a, _client(url, mode, tokens[1]) as b:
                seen: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_create_and_run, a, "box-a", seen)
                    tg.start_soon(_create_and_run, b, "box-b", seen)
                for name in ("box-a", "box-b"):
                    assert seen[name]["run"]["stdout"].split() == [f"{name}-{i}" for i in (1, 2, 3)]
                listed_a = await _ok(a, "box_list", {})
                listed_b = await _ok(b, "box_list", {})
                assert [box["name"] for box in listed_a["boxes"]] == ["box-a"]
                assert [box["name"] for box in listed_b["boxes"]] == ["box-b"]
                a_id = seen["box-a"]["id"]
                for ref in (a_id, "box-a"):
                    for tool, args in (
                        ("box_info", {"box": ref}),
                        ("exec_run", {"box": ref, "command": "true"}),
                        ("box_remove", {"box": ref}),
                    ):
                        refused = await b.call_tool(tool, args)
                        assert refused.is_error, (tool, ref)
                        # It repeats what B asked for, and nothing more of A's box.
                        told = _text(refused)
                        assert f"({ref!r})" in told
                        told = told.replace(f"({ref!r})", "")
                        assert a_id not in told and "box-a" not in told
                assert (await _ok(a, "box_info", {"box": "box-a"}))["box"]["id"] == a_id


async def test_progress_reaches_the_client_over_http(tmp_path: Path) -> None:
    async with real_server(tmp_path / "home", transport="streamable-http") as (
        server,
        _runtime,
        settings,
    ):
        async with serve_settings(server, settings) as port:
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                seen: dict[str, Any] = {}
                await _create_and_run(client, "streamer", seen)
                words = lambda: "".join(m for _, m in seen["streamer"]["progress"]).split()  # noqa: E731
                with anyio.fail_after(5):  # callbacks may trail the result
                    while len(words()) < 3:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
    ordered = sorted(seen["streamer"]["progress"])
    assert "".join(m for _, m in ordered).split() == ["streamer-1", "streamer-2", "streamer-3"]


async def test_session_delete_removes_its_scratch_boxes(tmp_path: Path) -> None:
    async with real_server(tmp_path / "home", transport="streamable-http") as (
        server,
        runtime,
        settings,
    ):
        async with serve_settings(server, settings) as port:
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                scratch = (await _ok(client, "box_create", {"name": "scratch"}))["box"]["id"]
                kept = await _ok(client, "box_create", {"name": "keeper", "persist": True})
                keeper = kept["box"]["id"]
                await _ok(client, "exec_run", {"box": "scratch", "command": "true"})
                assert {scratch, keeper} <= {box.id for box in await runtime.list()}
            # Leaving the client sent DELETE for the session.
            with anyio.fail_after(15):
                while scratch in {box.id for box in await runtime.list()}:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert keeper in {box.id for box in await runtime.list()}
            await runtime.remove(keeper, force=True)


async def test_sse_clients_are_separate_owners_and_stream_progress(tmp_path: Path) -> None:
    async with real_server(tmp_path / "home", transport="sse") as (server, runtime, settings):
        async with serve_settings(server, settings) as port:
            url = f"http://127.0.0.1:{port}/sse"
            async with Client(sse_client(url), mode="legacy") as a:
                async with Client(sse_client(url), mode="legacy") as b:
                    seen: dict[str, Any] = {}
                    await _create_and_run(a, "sse-a", seen)
                    expected = ["sse-a-1", "sse-a-2", "sse-a-3"]
                    assert seen["sse-a"]["run"]["stdout"].split() == expected
                    assert (await _ok(b, "box_list", {}))["boxes"] == []
                    assert (await b.call_tool("box_info", {"box": "sse-a"})).is_error
                    listed = await _ok(a, "box_list", {})
                    assert [box["name"] for box in listed["boxes"]] == ["sse-a"]
                sse_a = seen["sse-a"]["id"]
                assert sse_a in {box.id for box in await runtime.list()}
            with anyio.fail_after(15):  # a's stream closed: its session's boxes go
                while sse_a in {box.id for box in await runtime.list()}:  # noqa: ASYNC110
                    await anyio.sleep(0.05)


async def test_sse_ignores_a_forged_session_header(tmp_path: Path) -> None:
    async with real_server(tmp_path / "home", transport="sse") as (server, _runtime, settings):
        async with serve_settings(server, settings) as port:
            url = f"http://127.0.0.1:{port}/sse"
            sessions: list[str] = []
            async with Client(
                sse_client(url, on_session_created=sessions.append), mode="legacy"
            ) as a:
                await _ok(a, "box_create", {"name": "victim"})
                forged = {"mcp-session-id": sessions[0]}
                async with Client(sse_client(url, headers=forged), mode="legacy") as b:
                    assert (await _ok(b, "box_list", {}))["boxes"] == []
