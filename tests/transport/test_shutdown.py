"""A signal stops the server cleanly: scratch boxes are removed, persistent ones stay."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from boxlite_mcp.runtime.bwrap import BwrapRuntime

from .conftest import alive, server_env, server_pid

pytestmark = pytest.mark.anyio


async def _remaining(home: Path) -> set[str]:
    """Names (as the client gave them) of the boxes left in the runtime's state."""
    runtime = BwrapRuntime(home=home)
    try:
        # The server records owners in runtime names: "mcp.<owner>.<flags>.<name>".
        return {(box.name or box.id).rsplit(".", 1)[-1] for box in await runtime.list()}
    finally:
        await runtime.aclose()


async def _make_boxes(client: Client) -> None:
    for args in ({"name": "scratch"}, {"name": "keeper", "persist": True}):
        result = await client.call_tool("box_create", args)
        assert not result.is_error
    assert not (await client.call_tool("exec_run", {"box": "scratch", "command": "true"})).is_error


async def test_sigterm_stops_http_server_and_removes_scratch_boxes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["-m", "boxlite_mcp", "--transport", "streamable-http", "--port", "0",
            "--runtime", "bwrap", "--home", str(home)]  # fmt: skip
    async with await anyio.open_process([sys.executable, *args], env=server_env()) as process:
        assert process.stderr is not None
        log = b""
        with anyio.fail_after(30):
            while not (found := re.search(rb"on (http://127\.0\.0\.1:\d+/mcp)", log)):
                log += await process.stderr.receive()
        async with Client(found.group(1).decode(), mode="auto") as client:
            await _make_boxes(client)
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                async for chunk in process.stderr:
                    log += chunk
                await process.wait()
    assert process.returncode == 0, log.decode()
    assert b"Traceback" not in log
    assert await _remaining(home) == {"keeper"}


async def test_sigterm_stops_stdio_server_and_removes_scratch_boxes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "boxlite_mcp", "--runtime", "bwrap", "--home", str(home)],
        env=server_env(),
    )
    async with Client(params, mode="legacy") as client:
        await _make_boxes(client)
        pid = server_pid(str(home))
        os.kill(pid, signal.SIGTERM)
        with anyio.fail_after(30):
            while alive(pid):  # noqa: ASYNC110 - another process, no event to wait on
                await anyio.sleep(0.05)
    assert await _remaining(home) == {"keeper"}
