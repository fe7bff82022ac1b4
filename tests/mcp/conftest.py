"""Fixtures for the MCP layer: a real bwrap runtime, the real server, in-memory clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.server import build_server
from boxlite_mcp.settings import Settings
from tests.harness.bwrap import factory


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with factory(tmp_path) as rt:
        yield rt


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """The one host directory the server may touch (its allowed root)."""
    path = tmp_path / "host"
    path.mkdir()
    return path


ServerFactory = Callable[..., MCPServer[Any]]


@pytest.fixture
def make_server(runtime: Runtime, host_dir: Path) -> ServerFactory:
    def make(**overrides: Any) -> MCPServer[Any]:
        options = {k: overrides.pop(k) for k in list(overrides) if k in ("middleware",)}
        settings = Settings(**{"allow_paths": [host_dir], **overrides})
        return build_server(runtime, settings, runtime_reason="the test asked for bwrap", **options)

    return make


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text(result)}"
    assert result.structured_content is not None
    return result.structured_content


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; its error message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    return text(result)


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
