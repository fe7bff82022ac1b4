"""MCP Tasks over real streamable HTTP with bearer auth: a task is its owner's alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from boxlite_mcp.transport.auth import StaticTokenVerifier
from tests.mcp.test_tasks import Tasks, poll, send, start

from .conftest import real_server, serve_settings

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def _client(url: str, token: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), extensions=[Tasks()])


async def test_another_bearer_token_cannot_see_or_cancel_a_task(tmp_path: Path) -> None:
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"})
    async with real_server(tmp_path / "home", transport="streamable-http") as (
        server,
        _runtime,
        settings,
    ):
        async with serve_settings(server, settings, verifier) as port:
            url = f"http://127.0.0.1:{port}/mcp"
            async with _client(url, ALICE) as alice, _client(url, BOB) as bob:
                created = await alice.call_tool("box_create", {"name": "mine"})
                assert not created.is_error
                task_id = await start(alice, "exec_run", box="mine", command="sleep 1; echo ok")
                for method in ("tasks/get", "tasks/cancel", "tasks/update"):
                    with pytest.raises(MCPError) as caught:
                        await send(bob.session, method, task_id)
                    assert f"No task {task_id!r}" in caught.value.error.message
                final = await poll(alice.session, task_id)
                assert final["status"] == "completed"
                assert final["result"]["structuredContent"]["stdout"].strip() == "ok"
