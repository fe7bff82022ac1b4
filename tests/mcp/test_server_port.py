"""A box never reaches the server's own HTTP port, even when the server picked it (--port 0).

The operator lists the host's loopback without a port (``host.boxlite.internal``),
the widest setting; the port the server really bound must still be refused by the
box's proxy. A real server subprocess, a real MCP client over HTTP, a real box.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tools.soaklib.server import McpHttpServer

pytestmark = pytest.mark.anyio


async def test_a_box_cannot_reach_the_port_the_server_picked(tmp_path: Path) -> None:
    server = McpHttpServer(
        tmp_path / "home", tmp_path / "server.log", args=["--net-allow", "host.boxlite.internal"]
    )
    async with server:
        port = urlsplit(server.url).port
        assert port
        http = create_mcp_http_client()
        async with Client(
            streamable_http_client(server.url, http_client=http), mode="auto"
        ) as client:
            created = await client.call_tool("box_create", {"network": True})
            assert not created.is_error, created
            box = (created.structured_content or {})["box"]["id"]
            ran = await client.call_tool(
                "exec_run",
                {
                    "box": box,
                    "command": "curl -s -o /dev/null -w '%{http_code}' -m 10 "
                    f"http://host.boxlite.internal:{port}/mcp",
                },
            )
            assert not ran.is_error, ran
            assert (ran.structured_content or {})["stdout"].strip() == "403"
            info = await client.call_tool("box_info", {"box": box})
            denials = (info.structured_content or {})["network"]["recent_denials"]
            assert any(str(port) in str(d) for d in denials), denials
