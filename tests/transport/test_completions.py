"""``completion/complete`` over real HTTP with bearer tokens: each owner completes their own ids.

Two owners (alice, bob) share one real server on the bwrap runtime; each gets the
boxes, snapshots and executions they made, by prefix, and never the other's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, PromptReference, ResourceTemplateReference, TextContent

from boxlite_mcp.transport.auth import StaticTokenVerifier

from .conftest import real_server, serve_settings

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"

BOX_TEMPLATE = ResourceTemplateReference(uri="boxlite://boxes/{box}")
FILE_TEMPLATE = ResourceTemplateReference(uri="boxlite://boxes/{box}/files/{+path}")
OUTPUT_TEMPLATE = ResourceTemplateReference(uri="boxlite://executions/{execution_id}/output")
RISKY = PromptReference(name="risky_change")


def _client(url: str, mode: str, token: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def _ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, _text(result)
    return dict(result.structured_content or {})


async def _values(
    client: Client,
    ref: ResourceTemplateReference | PromptReference,
    name: str,
    value: str,
    context: dict[str, str] | None = None,
) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, context)
    assert result.completion.total == len(result.completion.values)
    return result.completion.values


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_each_owner_completes_only_their_own_ids(tmp_path: Path, mode: str) -> None:
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"})
    async with real_server(tmp_path / "home", transport="streamable-http") as (
        server,
        _runtime,
        settings,
    ):
        async with serve_settings(server, settings, verifier) as port:
            url = f"http://127.0.0.1:{port}/mcp"
            async with _client(url, mode, ALICE) as alice, _client(url, mode, BOB) as bob:
                await _check(alice, bob)


async def _check(alice: Client, bob: Client) -> None:
    capabilities = alice.server_capabilities
    assert capabilities is not None and capabilities.completions is not None
    web = (await _ok(alice, "box_create", name="web"))["box"]["id"]
    await _ok(alice, "box_create", name="worker")
    bobs = (await _ok(bob, "box_create", name="wiki"))["box"]["id"]
    ran = await _ok(alice, "exec_run", box="web", command="echo hi")
    bob_ran = await _ok(bob, "exec_run", box="wiki", command="echo hi")
    await _ok(alice, "box_stop", box="web")
    await _ok(alice, "snapshot_create", box="web", name="clean")
    await _ok(alice, "snapshot_create", box="web", name="configured")

    # Boxes: names by prefix, the ids too; bob's "wiki" never reaches alice.
    assert await _values(alice, BOX_TEMPLATE, "box", "w") == ["web", "worker"]
    assert await _values(alice, BOX_TEMPLATE, "box", "wo") == ["worker"]
    assert await _values(alice, FILE_TEMPLATE, "box", web[:6]) == [web]
    assert await _values(alice, BOX_TEMPLATE, "box", "wi") == []
    assert await _values(alice, BOX_TEMPLATE, "box", bobs) == []
    assert await _values(bob, BOX_TEMPLATE, "box", "") == ["wiki", bobs]
    assert await _values(bob, RISKY, "box", "w") == ["wiki"]

    # Executions: the caller's own.
    mine = ran["execution_id"]
    assert await _values(alice, OUTPUT_TEMPLATE, "execution_id", "") == [mine]
    assert await _values(alice, OUTPUT_TEMPLATE, "execution_id", mine[:4]) == [mine]
    assert await _values(alice, OUTPUT_TEMPLATE, "execution_id", bob_ran["execution_id"]) == []
    assert await _values(bob, OUTPUT_TEMPLATE, "execution_id", "") == [bob_ran["execution_id"]]

    # Snapshots: within the box named in the context, only a box of the caller's.
    assert await _values(alice, RISKY, "snapshot", "c", {"box": "web"}) == ["clean", "configured"]
    assert await _values(alice, RISKY, "snapshot", "cl", {"box": web}) == ["clean"]
    assert await _values(alice, RISKY, "snapshot", "") == []  # no box given
    assert await _values(bob, RISKY, "snapshot", "", {"box": web}) == []
    assert await _values(bob, RISKY, "snapshot", "", {"box": "web"}) == []

    # An argument the prompt or template does not have completes to nothing.
    assert await _values(alice, RISKY, "execution_id", "") == []
    assert await _values(alice, BOX_TEMPLATE, "execution_id", "") == []
    assert await _values(alice, PromptReference(name="no_such_prompt"), "box", "") == []
    assert await _values(alice, RISKY, "change", "") == []
