"""Real HTTP servers for transport tests: uvicorn on a loopback socket in the test's task group."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.settings import Settings
from boxlite_mcp.transport.auth import StaticTokenVerifier
from boxlite_mcp.transport.http import bind, http_app


def tiny_server() -> MCPServer:
    """A two-tool server: enough to see who is calling and that progress streams."""
    server: MCPServer = MCPServer("tiny")

    @server.tool()
    def whoami() -> str:
        """The subject of the caller's bearer token, or 'anonymous'."""
        token = get_access_token()
        return token.subject or "?" if token is not None else "anonymous"

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Report n progress steps, then finish."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
            await anyio.sleep(0.01)
        return f"counted {n}"

    return server


@asynccontextmanager
async def serve_app(app: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    """Run ``app`` under uvicorn on ``sock`` until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True


@asynccontextmanager
async def serve_settings(
    server: MCPServer,
    settings: Settings,
    verifier: StaticTokenVerifier | None = None,
    bind_host: str = "127.0.0.1",
) -> AsyncIterator[int]:
    """Serve ``server`` as ``settings`` say (transport, allowed hosts); yields the port."""
    sock = bind(bind_host, 0)
    port = int(sock.getsockname()[1])
    app = http_app(server, settings, port=port, verifier=verifier)
    with sock:
        async with serve_app(app, sock):
            yield port


@asynccontextmanager
async def real_server(
    home: Path, **overrides: Any
) -> AsyncIterator[tuple[MCPServer, Runtime, Settings]]:
    """The real boxlite-mcp server on the bwrap runtime (boxes under ``home``)."""
    from boxlite_mcp.app.select import open_runtime
    from boxlite_mcp.server import build_server

    settings = Settings(runtime="bwrap", home=home, **overrides)
    selected = await open_runtime(settings)
    try:
        server = build_server(selected.runtime, settings, runtime_reason=selected.reason)
        yield server, selected.runtime, settings
    finally:
        with anyio.CancelScope(shield=True):
            await selected.runtime.aclose()


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server subprocess: ours without BOXLITE_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXLITE")}
    return {**env, **extra}


def server_pid(marker: str) -> int:
    """The pid of the boxlite_mcp process whose command line holds ``marker``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ours = int(entry) == os.getpid()
            if b"boxlite_mcp" in cmdline and marker.encode() in cmdline and not ours:
                return int(entry)
    raise AssertionError("server process not found")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
