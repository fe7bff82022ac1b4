"""Bugs the soak, probe and fuzz runs led to, each pinned down on its own.

An open one is a strict xfail whose reason names the file, the cause and a fix: when
the fix lands the test passes, strict xfail turns that into a failure, and the marker
comes off (as it did for the stdio exit below).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.shared import archive
from tools.benchlib.procs import REPO, child_env
from tools.soaklib.calls import ok, text_of
from tools.soaklib.server import stdio_server_args


def _stdio(home: Path, log: Path) -> Client:
    params = StdioServerParameters(
        command=sys.executable, args=stdio_server_args(home), cwd=str(REPO), env=child_env()
    )
    return Client(stdio_client(params, errlog=log.open("a")), mode="legacy")


@pytest.mark.anyio
async def test_a_second_stdio_server_on_the_same_home_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    async with _stdio(home, tmp_path / "first.log") as first:
        await ok(first, "box_create", {"name": "work"})
        job = await ok(first, "exec_start", {"box": "work", "command": "sleep 60"})
        # The second server refuses the home in use, saying why, instead of taking the
        # first's running boxes for crash leftovers (fixed: a lock on the home).
        with pytest.raises(Exception):  # noqa: B017 - the SDK's error for a child that exited
            async with _stdio(home, tmp_path / "second.log") as second:
                await second.list_tools()
        assert (
            "another boxlite-mcp runtime is using the home" in (tmp_path / "second.log").read_text()
        )
        job_now = await ok(
            first,
            "exec_read",
            {"execution_id": job["execution_id"], "wait_seconds": 1, "until_exit": True},
        )
        assert job_now["running"], f"the first's job was killed: exit {job_now['exit_code']}"
        still = await first.call_tool("exec_run", {"box": "work", "command": "true"})
        assert not still.is_error, f"the first's box is gone: {text_of(still)[:200]}"
        await first.call_tool("exec_kill", {"execution_id": job["execution_id"]})


def _rpc(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write((json.dumps(message) + "\n").encode())
    process.stdin.flush()


def _read(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    return dict(json.loads(process.stdout.readline()))


def test_stdio_server_exits_cleanly_when_its_client_vanishes_mid_call(tmp_path: Path) -> None:
    """A client gone while a call streams: the server cleans up and exits 0, no traceback.

    Found by the leak soak (exit status 1 and a BrokenPipeError ExceptionGroup from the
    SDK's stdout writer); fixed by boxlite_mcp/stdio.py (95b5ab5). A regression test now.
    """
    home = tmp_path / "home"
    process = subprocess.Popen(
        [sys.executable, *stdio_server_args(home)],
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _rpc(
            process,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "vanishing", "version": "1"},
                },
            },
        )
        assert "result" in _read(process)
        _rpc(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _rpc(
            process,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "box_create", "arguments": {"name": "b"}},
            },
        )
        assert "result" in _read(process)
        _rpc(
            process,
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {
                    "name": "exec_run",
                    "arguments": {"box": "b", "command": "echo started; sleep 60"},
                    "_meta": {"progressToken": "p"},
                },
            },
        )
        assert _read(process).get("method") == "notifications/progress"
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()  # the client is gone: EOF in, nobody reading out
        process.stdout.close()
        status = process.wait(timeout=60)
        assert process.stderr is not None
        stderr = process.stderr.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert list((home / "boxes").iterdir()) == []  # it did clean up
    assert (status, "Traceback" in stderr) == (0, False), stderr[-1500:]


@pytest.mark.anyio
async def test_file_read_refuses_a_directory_without_copying_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from boxlite_mcp.server import build_server
    from boxlite_mcp.settings import Settings

    copies: list[str] = []
    real_aunpack = archive.aunpack

    async def watched(tar_file: Any, dest: Any, limits: archive.Limits | None = None) -> Any:
        copies.append(str(dest))
        return await (
            real_aunpack(tar_file, dest) if limits is None else real_aunpack(tar_file, dest, limits)
        )

    monkeypatch.setattr(archive, "aunpack", watched)
    runtime = BwrapRuntime(home=tmp_path / "home")
    try:
        async with Client(build_server(runtime, Settings())) as client:
            await ok(client, "box_create", {"name": "w", "working_dir": "/dev/zero"})
            read = await client.call_tool("file_read", {"box": "w", "path": "/etc"})
        assert read.is_error and "directory" in text_of(read)
        assert copies == []  # refused from the size probe, before anything reached the host
    finally:
        for info in await runtime.list():
            await runtime.remove(info.id, force=True)
        await runtime.aclose()
