"""The real server as a stdio subprocess: tools, streamed exec, a clean wire, boxes off the wire."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import TextContent

from tools.benchlib.procs import descendants

from .conftest import server_env, server_pid

pytestmark = pytest.mark.anyio

ISSUE_TOOLS = {
    "box_create", "box_list", "box_info", "box_start", "box_stop", "box_remove", "box_clone",
    "box_export", "box_import", "exec_run", "exec_start", "exec_read", "exec_write",
    "exec_signal", "exec_kill", "file_read", "file_write", "copy_in", "copy_out",
    "snapshot_create", "snapshot_list", "snapshot_restore", "snapshot_remove", "box_metrics",
    "runtime_info",
}  # fmt: skip


def server_args(home: Path, *extra: str) -> list[str]:
    return ["-m", "boxlite_mcp", "--runtime", "bwrap", "--home", str(home), *extra]


def params(home: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=server_args(home, *extra), env=server_env()
    )


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, [c.text for c in result.content if isinstance(c, TextContent)]
    return dict(result.structured_content or {})


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_lists_tools_and_streams_exec_output(tmp_path: Path, mode: str) -> None:
    async with Client(params(tmp_path / "home"), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert ISSUE_TOOLS <= names
        await client.call_tool("box_create", {"name": "s"})
        seen: list[tuple[float, str]] = []
        three = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message or ""))
            if len("".join(m for _, m in seen).split()) >= 3:
                three.set()

        ran = _ok(
            await client.call_tool(
                "exec_run",
                {"box": "s", "command": "for i in 1 2 3; do echo n$i; sleep 0.1; done; echo e >&2"},
                progress_callback=on_progress,
            )
        )
        with anyio.fail_after(5):
            await three.wait()
        assert ran["exit_code"] == 0
        assert ran["stdout"] == "n1\nn2\nn3\n"
        assert ran["stderr"] == "e\n"
        streamed = "".join(m for _, m in sorted(seen))
        assert streamed.split()[:3] == ["n1", "n2", "n3"]
        progress = [p for p, _ in seen]
        assert sorted(progress) == sorted(set(progress))  # strictly increasing when sorted


def _pipes(pid: int) -> dict[str, list[str]]:
    """pipe:[inode] → the fds of ``pid`` that hold it."""
    held: dict[str, list[str]] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return held
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            held.setdefault(target, []).append(fd)
    return held


async def test_box_processes_never_hold_the_transport_pipes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with Client(params(home), mode="legacy") as client:
        await client.call_tool("box_create", {"name": "p"})
        # A program reading stdin gets EOF at once (not the JSON-RPC stream) ...
        cat = _ok(await client.call_tool("exec_run", {"box": "p", "command": "cat; echo done"}))
        assert cat["stdout"] == "done\n"
        # ... and while a command runs, no process under the server holds the wire.
        started = _ok(await client.call_tool("exec_start", {"box": "p", "command": "sleep 30"}))
        server = server_pid(str(home))
        wire = set(_pipes(server)) & set(_pipes(os.getpid()))
        assert wire, "the server's transport pipes were not found"
        below = descendants(server)
        assert below, "no box processes found under the server"
        for pid in below:
            leaked = wire & set(_pipes(pid))
            assert not leaked, f"process {pid} holds the transport pipe(s) {leaked}"
        _ok(await client.call_tool("exec_kill", {"execution_id": started["execution_id"]}))
        assert "box_list" in {t.name for t in (await client.list_tools()).tools}


async def test_stdout_carries_only_json_rpc_and_logs_go_to_stderr(tmp_path: Path) -> None:
    args = server_args(tmp_path / "home", "--log-level", "debug")
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "box_create", "arguments": {"name": "raw"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "exec_run", "_meta": {"progressToken": "t"},
            "arguments": {"box": "raw", "command": "echo to-stdout; echo to-stderr >&2"}}},
    ]  # fmt: skip
    async with await anyio.open_process(
        [sys.executable, *args], env=server_env(), stderr=None
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        lines: list[dict[str, Any]] = []
        buffer = b""
        with anyio.fail_after(60):
            for request in requests:
                await process.stdin.send(json.dumps(request).encode() + b"\n")
                if "id" not in request:
                    continue
                while not any(m.get("id") == request["id"] for m in lines):
                    buffer += await process.stdout.receive()
                    *complete, buffer = buffer.split(b"\n")
                    lines += [json.loads(line) for line in complete if line]
            await process.stdin.aclose()
            rest = b""
            async for chunk in process.stdout:
                rest += chunk
            lines += [json.loads(line) for line in (buffer + rest).split(b"\n") if line]
            await process.wait()
    assert all(m.get("jsonrpc") == "2.0" for m in lines)
    progress = [m for m in lines if m.get("method") == "notifications/progress"]
    assert any("to-stdout" in m["params"].get("message", "") for m in progress)
    result = next(m for m in lines if m.get("id") == 3)["result"]
    assert result["structuredContent"]["stdout"] == "to-stdout\n"


async def test_stderr_has_leveled_logs(tmp_path: Path) -> None:
    async with await anyio.open_process(
        [sys.executable, *server_args(tmp_path / "home", "--log-level", "debug")],
        env=server_env(),
    ) as process:
        assert process.stdin is not None and process.stderr is not None
        await process.stdin.aclose()
        with anyio.fail_after(30):
            err = b"".join([chunk async for chunk in process.stderr]).decode()
            await process.wait()
    assert process.returncode == 0, err
    assert " INFO boxlite_mcp" in err
    assert "runtime: bwrap" in err
    assert "Traceback" not in err


async def test_stdio_long_command_returns_early_then_exec_read_finishes_it(
    tmp_path: Path,
) -> None:
    """A 3 s command with return_after_seconds 1 returns running in ~1 s over the real wire;
    exec_read then gets all of its output and its exit code."""
    async with Client(params(tmp_path / "home")) as client:
        await client.call_tool("box_create", {"name": "s"})
        began = anyio.current_time()
        ran = _ok(
            await client.call_tool(
                "exec_run",
                {
                    "box": "s",
                    "command": "echo start; sleep 3; echo end; echo oops >&2; exit 4",
                    "return_after_seconds": 1,
                },
            )
        )
        took = anyio.current_time() - began
        assert 0.9 <= took < 2.5, took
        assert ran["running"] is True and ran["stdout"] == "start\n"
        assert "exec_read" in ran["next_step"]
        final = _ok(
            await client.call_tool(
                "exec_read",
                {"execution_id": ran["execution_id"], "until_exit": True, "wait_seconds": 30},
            )
        )
        assert final["running"] is False and final["exit_code"] == 4
        assert final["stdout"] == "start\nend\n" and final["stderr"] == "oops\n"
