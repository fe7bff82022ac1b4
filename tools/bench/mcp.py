"""A real ``python -m boxlite_mcp --runtime bwrap`` over stdio, driven by the SDK's Client.

What an agent's MCP client sees: every measurement here goes through JSON-RPC
over the server's stdin/stdout, the tool layer, the registry and the runtime.
Calls carry a progress token (``progress_callback``), as a client that shows
live output does.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import TextContent

from tools.benchlib.procs import REPO, child_env, descendants, find_child, rss_kib, tree_rss_kib
from tools.soaklib.server import stdio_server_args

STAMP_COMMAND = "date +%s%N; sleep 0.05"


@dataclass
class McpServer:
    client: Client
    pid: int  # the server process (for its RSS)


@contextlib.asynccontextmanager
async def mcp_server(home: Path, log: Path, max_boxes: int) -> AsyncIterator[McpServer]:
    """Start the server as an agent would (stdio subprocess); its stderr goes to ``log``."""
    env = child_env(
        BOXLITE_MCP_MAX_BOXES_PER_OWNER=str(max_boxes), BOXLITE_MCP_MAX_BOXES_TOTAL=str(max_boxes)
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=stdio_server_args(home, "warning"),
        env=env,
        cwd=str(REPO),
    )
    with log.open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield McpServer(client, find_child(str(home)))


async def _noop(progress: float, total: float | None, message: str | None) -> None:
    return None


async def call(
    client: Client, tool: str, arguments: dict[str, Any], progress: Any = _noop
) -> dict[str, Any]:
    """Call a tool; an ``isError`` result becomes an exception carrying its text."""
    result = await client.call_tool(tool, arguments, progress_callback=progress)
    if result.is_error:
        text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
        raise RuntimeError(f"{tool} failed: {text[:300]}")
    return dict(result.structured_content or {})


async def exec_true(client: Client, box: str) -> None:
    """exec_run of ``true`` (an exact argv: no shell, as the direct call)."""
    ran = await call(client, "exec_run", {"box": box, "argv": ["true"]})
    if ran.get("exit_code") != 0:
        raise RuntimeError(f"exec_run true: {ran}")


async def python_one_plus_one(client: Client, box: str) -> None:
    """python_run of ``1+1`` in the box's persistent session."""
    ran = await call(client, "python_run", {"box": box, "code": "1+1"})
    if ran.get("result") != "2":
        raise RuntimeError(f"python_run 1+1: {ran}")


async def exec_python_one_plus_one(client: Client, box: str) -> None:
    """exec_run of ``python3 -c "1+1"``: a fresh interpreter per call."""
    ran = await call(client, "exec_run", {"box": box, "argv": ["python3", "-c", "1+1"]})
    if ran.get("exit_code") != 0:
        raise RuntimeError(f"exec_run python3 -c 1+1: {ran}")


@dataclass
class Flood:
    mb_per_s: float
    seconds: float
    notifications: int
    per_second: float
    streamed_bytes: int


async def flood(client: Client, box: str, nbytes: int) -> Flood:
    """``nbytes`` of stdout through exec_run's progress notifications.

    The clock stops when the result and every streamed byte have arrived
    (notifications may be handled after ``call_tool`` returns).
    """
    streamed = 0
    count = 0
    last = 0.0
    done = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal streamed, count, last
        count += 1
        streamed += len((message or "").encode())
        last = time.perf_counter()
        if streamed >= nbytes:
            done.set()

    command = f"head -c {nbytes} /dev/zero | tr '\\0' a"
    start = time.perf_counter()
    ran = await call(client, "exec_run", {"box": box, "command": command}, on_progress)
    returned = time.perf_counter()
    with anyio.move_on_after(10):
        await done.wait()
    if ran.get("exit_code") != 0 or ran.get("stdout_bytes") != nbytes:
        raise RuntimeError(
            f"flood: exit {ran.get('exit_code')}, {ran.get('stdout_bytes')} of {nbytes} bytes"
        )
    if streamed != nbytes:
        raise RuntimeError(f"flood: {streamed} of {nbytes} bytes arrived as progress")
    seconds = max(returned, last) - start
    return Flood(nbytes / seconds / 1e6, seconds, count, count / seconds, streamed)


async def first_output(client: Client, box: str) -> float:
    """Milliseconds from the box writing a byte to this client's progress callback.

    The box prints its CLOCK_REALTIME (``date +%s%N``, read just before the write);
    the callback reads the same clock on receipt: a bwrap box shares the host kernel.
    """
    latency: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not latency and message:
            received = time.time_ns()
            latency.append((received - int(message.split("\n", 1)[0])) / 1e6)

    ran = await call(client, "exec_run", {"box": box, "command": STAMP_COMMAND}, on_progress)
    with anyio.move_on_after(5):
        while not latency:  # noqa: ASYNC110 - the callback may lag the result a little
            await anyio.sleep(0.001)
    if ran.get("exit_code") != 0 or not latency:
        raise RuntimeError(f"stamp command: {ran}")
    return latency[0]


@dataclass
class Memory:
    boxes: int
    server_before_kib: int
    server_after_kib: int
    boxes_kib: int  # the box processes (outside the server), summed RSS
    box_processes: int = field(default=0)

    @property
    def server_per_box_kib(self) -> float:
        return (self.server_after_kib - self.server_before_kib) / self.boxes

    @property
    def box_per_box_kib(self) -> float:
        return self.boxes_kib / self.boxes


async def memory(server: McpServer, names: list[str]) -> Memory:
    """RSS of the server process before and after one running box per name.

    Each box is created with box_create and started by one exec_run; the
    server's own RSS is measured, and separately the box processes it spawned.
    """
    before_children = descendants(server.pid)
    before = rss_kib(server.pid)
    for name in names:
        await call(server.client, "box_create", {"name": name})
        await exec_true(server.client, name)
    after = rss_kib(server.pid)
    new = descendants(server.pid) - before_children
    return Memory(len(names), before, after, tree_rss_kib(new), len(new))


async def remove_boxes(client: Client, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(RuntimeError):
            await call(client, "box_remove", {"box": name, "force": True})
