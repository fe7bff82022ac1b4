"""transport/stdio.py on the wire: what the SDK's stdio transport reads and writes, byte for byte.

A small server runs in a child process behind ``run_stdio``. Over a pipe it is
served from the event loop; with stdin a regular file the SDK's own transport
serves it; the same bytes in must give the same messages out either way.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import server_env

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import anyio, sys
from boxlite_mcp.transport.stdio import run_stdio, serves_without_threads
from tests.transport.conftest import tiny_server
print("threadless" if serves_without_threads() else "sdk", file=sys.stderr, flush=True)
anyio.run(run_stdio, tiny_server())
print("served", file=sys.stderr, flush=True)
"""


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


INIT = _line({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"}}})  # fmt: skip
INITIALIZED = _line({"jsonrpc": "2.0", "method": "notifications/initialized"})
BIG = "x" * 300_000  # several reads' worth in one line


def _wire() -> bytes:
    """Requests as a client might frame them: CRLF, a stray CR, junk, bad UTF-8, a long line."""
    ping_big = _line({"jsonrpc": "2.0", "id": 2, "method": "ping",
                      "params": {"_meta": {"pad": BIG}}})  # fmt: skip
    ping_bad_utf8 = (
        b'{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": {"_meta": {"pad": "\xff"}}}'
    )
    count = _line({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "count", "arguments": {"n": 2}, "_meta": {"progressToken": "t"}}})  # fmt: skip
    last = _line({"jsonrpc": "2.0", "id": 5, "method": "ping"})
    return b"".join([
        INIT, b"\r\n", INITIALIZED, b"\n", b"this is not json\n", ping_big, b"\n",
        ping_bad_utf8, b"\r", count, b"\n", b"\n", last, b"\n",
    ])  # fmt: skip


def _converse(tmp_path: Path, *, sdk: bool) -> tuple[list[dict[str, Any]], str, int]:
    """Send the wire, wait for answers to ids 1-5 and both progress steps, then EOF.

    With stdout a regular file the SDK's transport serves (the same pipe for stdin).
    """
    out_path = tmp_path / ("sdk.out" if sdk else "ours.out")
    with out_path.open("wb") as out_file:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
            stdout=out_file if sdk else subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
            env=server_env(),
        )  # fmt: skip
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(_wire())
    process.stdin.flush()
    received = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sdk:
            received = out_path.read_bytes()
            time.sleep(0.02)
        else:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                received += os.read(process.stdout.fileno(), 1 << 20)
        messages = [json.loads(line) for line in received.split(b"\n")[:-1] if line]
        ids = {m.get("id") for m in messages}
        progress = [m for m in messages if m.get("method") == "notifications/progress"]
        if {1, 2, 3, 4, 5} <= ids and len(progress) == 2:
            break
    process.stdin.close()
    status = process.wait(timeout=60)
    if not sdk:
        assert process.stdout is not None
        received += process.stdout.read()
        process.stdout.close()
    else:
        received = out_path.read_bytes()
    err = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    return [json.loads(line) for line in received.split(b"\n") if line], err, status


def _by_id(messages: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {m["id"]: m for m in messages if "id" in m}


def test_pipe_is_served_threadless_and_answers_every_framed_request(tmp_path: Path) -> None:
    messages, err, status = _converse(tmp_path, sdk=False)
    assert (status, err.split()[0], "Traceback" in err) == (0, "threadless", False), err
    answers = _by_id(messages)
    assert answers[1]["result"]["serverInfo"]["name"] == "tiny"
    assert answers[2]["result"] == {} and answers[3]["result"] == {} and answers[5]["result"] == {}
    assert answers[4]["result"]["content"][0]["text"] == "counted 2"
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert sorted(p["progress"] for p in progress) == [1, 2]


def test_same_bytes_give_the_same_messages_as_the_sdks_transport(tmp_path: Path) -> None:
    sdk, sdk_err, sdk_status = _converse(tmp_path, sdk=True)
    ours, err, status = _converse(tmp_path, sdk=False)
    assert sdk_err.split()[0] == "sdk" and err.split()[0] == "threadless"
    assert (sdk_status, status) == (0, 0), (sdk_err, err)

    def canonical(messages: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(m, sort_keys=True) for m in messages)

    assert canonical(ours) == canonical(sdk)


def test_a_last_line_without_newline_is_read_at_eof(tmp_path: Path) -> None:
    """A text file's last line needs no newline; a malformed one is reported, not a crash."""
    code = "import logging; logging.basicConfig(level=logging.DEBUG)\n" + CHILD
    process = subprocess.run(
        [sys.executable, "-c", code], input=INIT + b"\n" + b"{unterminated", capture_output=True,
        cwd=REPO, env=server_env(), timeout=60,
    )  # fmt: skip
    err = process.stderr.decode(errors="replace")
    assert (process.returncode, "Traceback" in err, "served" in err) == (0, False, True), err
    assert json.loads(process.stdout.split(b"\n")[0])["id"] == 1
    assert "transport yielded exception" in err and "{unterminated" in err, err


def test_a_client_that_stops_reading_ends_the_server_cleanly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read the server's output
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=write_end,
            stderr=subprocess.PIPE, cwd=REPO, env=server_env(),
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, err = process.communicate(INIT + b"\n" + INITIALIZED + b"\n", timeout=60)
    text = err.decode(errors="replace")
    assert (process.returncode, "Traceback" in text) == (0, False), text
    assert "served" in text


@pytest.mark.parametrize("fd", [0, 1])
def test_stdio_descriptors_are_restored_after_serving(fd: int, tmp_path: Path) -> None:
    code = f"""
import anyio, os, sys
from boxlite_mcp.transport.stdio import run_stdio
from tests.transport.conftest import tiny_server
before = os.fstat({fd})
anyio.run(run_stdio, tiny_server())
after = os.fstat({fd})
print((before.st_dev, before.st_ino) == (after.st_dev, after.st_ino),
      os.get_blocking({fd}), file=sys.stderr)
"""
    process = subprocess.run(
        [sys.executable, "-c", code], input=INIT + b"\n", capture_output=True, cwd=REPO,
        env=server_env(), timeout=60,
    )  # fmt: skip
    assert process.stderr.decode().split()[-2:] == ["True", "True"], process.stderr.decode()


def test_a_stderr_sharing_the_stdout_pipe_stays_blocking(tmp_path: Path) -> None:
    """O_NONBLOCK on a shared description would make the server's own logging fail."""
    code = """
import anyio, os, sys
from boxlite_mcp.transport.stdio import run_stdio
from tests.transport.conftest import tiny_server
async def main():
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_stdio, tiny_server())
        await anyio.sleep(0.3)
        print("stderr-blocking", os.get_blocking(2), file=sys.stderr, flush=True)
anyio.run(main)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=REPO, env=server_env(),
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(INIT + b"\n")
    process.stdin.flush()
    lines = [process.stdout.readline(), process.stdout.readline()]
    rest, _ = process.communicate(timeout=60)  # closes stdin: EOF ends the server
    assert json.loads(lines[0])["id"] == 1
    assert lines[1] == b"stderr-blocking True\n", (lines, rest)
    assert process.returncode == 0, rest


def test_a_socket_for_stdin_and_stdout_is_served_threadless(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=theirs.fileno(), stdout=theirs.fileno(),
            stderr=subprocess.PIPE, cwd=REPO, env=server_env(),
        )  # fmt: skip
        theirs.close()
        ours.sendall(INIT + b"\n")
        ours.settimeout(60)
        received = b""
        while b"\n" not in received:
            chunk = ours.recv(65536)
            assert chunk, "the server closed the socket without answering"
            received += chunk
        ours.shutdown(socket.SHUT_WR)  # EOF: the server ends
        _, err = process.communicate(timeout=60)
    text = err.decode(errors="replace")
    assert json.loads(received.split(b"\n")[0])["id"] == 1
    assert (process.returncode, text.split()[0], "served" in text) == (0, "threadless", True), text
