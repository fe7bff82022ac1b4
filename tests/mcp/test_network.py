"""Box networking through the MCP tools: allow_net, box_info's network, box_expose, owners.

A real bwrap runtime whose operator list opens one loopback HTTP server this test
starts (as ``host.boxlite.internal:PORT``); real in-memory MCP clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.server import build_server
from boxlite_mcp.settings import Settings

from .conftest import fails, ok
from .test_owners import as_user, principal_from_client_name

pytestmark = pytest.mark.anyio


@pytest.fixture
async def web() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def server(tmp_path: Path, web: int) -> AsyncIterator[Any]:
    rt = BwrapRuntime(home=tmp_path / "home", net_allow=[f"host.boxlite.internal:{web}"])
    try:
        yield build_server(
            rt, Settings(), runtime_reason="test", middleware=[principal_from_client_name]
        )
    finally:
        await rt.aclose()


async def test_allow_net_outside_the_servers_set_is_refused(server: Any) -> None:
    async with as_user(server, "alice", "auto") as client:
        message = await fails(client, "box_create", allow_net=["pypi.org"])
        assert "'pypi.org'" in message and "outside" in message and "--net-allow" in message
        message = await fails(client, "box_create", allow_net=["exa mple.com"])
        assert "exa mple.com" in message
        assert (await ok(client, "box_list"))["count"] == 0


async def test_allowed_destination_blocked_one_and_box_info(server: Any, web: int) -> None:
    async with as_user(server, "alice", "auto") as client:
        box = (await ok(client, "box_create", allow_net=[f"host.boxlite.internal:{web}"]))["box"]
        assert box["network_enabled"] is True  # allow_net implies network
        run = await ok(
            client,
            "exec_run",
            box=box["id"],
            command=f"curl -sS http://host.boxlite.internal:{web}/; echo; "
            f"curl -sS http://host.boxlite.internal:{web + 1}/ || true",
        )
        assert run["stdout"].startswith("hello\n")
        assert f"host.boxlite.internal:{web + 1}" in run["stdout"]  # the 403 body
        info = await ok(client, "box_info", box=box["id"])
        network = info["network"]
        assert f"host.boxlite.internal:{web}" in network["policy"]
        assert network["recent_denials"][0]["destination"] == f"host.boxlite.internal:{web + 1}"
        metrics = await ok(client, "box_metrics", box=box["id"])
        assert metrics["metrics"]["network_tcp_connections"] == 1


async def test_expose_is_owned_like_the_box(server: Any) -> None:
    async with as_user(server, "alice", "auto") as alice, as_user(server, "bob", "auto") as bob:
        box = (await ok(alice, "box_create", name="web"))["box"]
        await ok(
            alice,
            "exec_start",
            box="web",
            argv=[
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                "127.0.0.1",
                "--directory",
                "/etc",
            ],
        )
        for _ in range(250):  # polled: the server in the box starts on its own
            probe = await alice.call_tool(
                "exec_run",
                {
                    "box": "web",
                    "argv": [
                        "python3",
                        "-c",
                        "import socket; socket.create_connection(('127.0.0.1', 8080), 1)",
                    ],
                },
            )
            if not probe.is_error and probe.structured_content["exit_code"] == 0:
                break
            await asyncio.sleep(0.02)
        exposed = await ok(alice, "box_expose", box="web", port=8080)
        assert exposed["box_id"] == box["id"] and exposed["url"].startswith("http://127.0.0.1:")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", int(exposed["url"].rsplit(":", 1)[1].rstrip("/"))
        )
        writer.write(b"GET /hostname HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(10):
            assert (await reader.read(-1)).startswith(b"HTTP/1.0 200")
        writer.close()
        info = await ok(alice, "box_info", box="web")
        assert info["network"]["exposed"][0]["url"] == exposed["url"]
        # Bob can neither expose nor see Alice's box.
        assert "No box" in await fails(bob, "box_expose", box="web", port=8080)
        assert "No box" in await fails(bob, "box_info", box="web")
        assert "port" in await fails(alice, "box_expose", box="web", port=0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=3))
async def test_malformed_allow_net_is_a_clear_error_and_creates_nothing(
    server: Any, entries: list[str]
) -> None:
    async with as_user(server, "carol", "auto") as client:
        result = await client.call_tool("box_create", {"allow_net": entries})
        assert result.is_error  # nothing random lies within host.boxlite.internal:PORT
        message = "\n".join(getattr(block, "text", "") for block in result.content)
        assert "allow_net" in message and "Traceback" not in message
        assert (await ok(client, "box_list"))["count"] == 0


async def test_secret_never_reaches_results_progress_or_logs(
    tmp_path: Path, web: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The value goes out in the box's request; no tool result, progress or log has it."""
    import secrets as random

    from boxlite_mcp.runtime.network.secrets import Secret

    value = "tok-" + random.token_hex(16)
    caplog.set_level(logging.DEBUG)
    rt = BwrapRuntime(
        home=tmp_path / "home",
        net_allow=[f"host.boxlite.internal:{web}"],
        secrets={"API_TOKEN": Secret("API_TOKEN", ("host.boxlite.internal",), value)},
    )
    seen: list[str] = []
    try:
        server = build_server(rt, Settings(), runtime_reason="test")
        async with Client(server) as client:
            created = await ok(client, "box_create", secrets=["API_TOKEN"])
            box = created["box"]["id"]
            assert created["box"]["network_enabled"] is True

            async def progress(done: float, total: float | None, message: str | None) -> None:
                seen.append(message or "")

            result = await client.call_tool(
                "exec_run",
                {
                    "box": box,
                    "command": f'echo "$API_TOKEN"; curl -sS -H "X-Key: $API_TOKEN" '
                    f"http://host.boxlite.internal:{web}/; env; "
                    f'curl -sS "http://host.boxlite.internal:{web + 1}/$API_TOKEN"',
                },
                progress_callback=progress,
            )
            assert not result.is_error
            out = result.structured_content or {}
            assert out["stdout"].startswith("<BOXLITE_SECRET:API_TOKEN>\nhello")
            seen.append(str(result.model_dump()))
            for tool, args in (
                ("box_info", {"box": box}),
                ("box_metrics", {"box": box}),
                ("runtime_info", {}),
                ("box_list", {}),
            ):
                seen.append(str((await client.call_tool(tool, args)).model_dump()))
            assert "API_TOKEN (for host.boxlite.internal)" in seen[-2]  # runtime_info names it
        seen.append(caplog.text)
        assert all(value not in text for text in seen)
    finally:
        await rt.aclose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=3))
async def test_unknown_or_malformed_secret_names_create_nothing(
    server: Any, names: list[str]
) -> None:
    async with as_user(server, "dave", "auto") as client:
        result = await client.call_tool("box_create", {"secrets": names})
        assert result.is_error  # the server in this module has no secrets at all
        message = "\n".join(getattr(block, "text", "") for block in result.content)
        assert "secret" in message and "Traceback" not in message
        assert (await ok(client, "box_list"))["count"] == 0


async def test_box_create_ports_are_exposed_and_listed(server: Any) -> None:
    async with as_user(server, "dana", "auto") as client:
        created = await ok(client, "box_create", name="svc", ports=[8090, 8091])
        exposed = created["exposed"]
        assert [e["port"] for e in exposed] == [8090, 8091]
        assert all(e["url"].startswith("http://127.0.0.1:") for e in exposed)
        assert exposed[0]["url"] in created["message"]
        info = await ok(client, "box_info", box="svc")
        assert [e["url"] for e in info["network"]["exposed"]] == [e["url"] for e in exposed]
        again = await ok(client, "box_expose", box="svc", port=8090)
        assert again["url"] == exposed[0]["url"]


@pytest.mark.parametrize(
    ("ports", "says"),
    [
        ([0], "ports entry 0 is not a TCP port"),
        ([70000], "ports entry 70000"),
        ([8080, 8080], "ports entry 8080 is given twice"),
        (list(range(1, 18)), "at most 16"),
    ],
)
async def test_bad_ports_are_a_clear_error_and_create_nothing(
    server: Any, ports: list[int], says: str
) -> None:
    async with as_user(server, "erin", "auto") as client:
        message = await fails(client, "box_create", ports=ports)
        assert says in message, message
        assert "Traceback" not in message
        assert (await ok(client, "box_list"))["count"] == 0
