"""Fixtures: the BoxLite server in strict mode over a real bwrap runtime.

``start_server(**config)`` runs a server (one runtime per test, homed in
tmp_path); every server started asserts at teardown that strict mode found no
violation unless the test took them (``server.state.violations.items.clear()``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.bwrap import factory as bwrap_factory
from tools.boxlite_server import RunningServer, ServerConfig, serve

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    stack = contextlib.AsyncExitStack()
    runtime = await stack.enter_async_context(bwrap_factory(tmp_path))
    servers: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        config = ServerConfig.model_validate({"strict": True, **overrides})
        server = await stack.enter_async_context(serve(runtime, config))
        servers.append(server)
        return server

    try:
        yield start
    finally:
        await stack.aclose()
    for server in servers:
        assert server.violations == [], "\n".join(str(v) for v in server.violations)


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client
