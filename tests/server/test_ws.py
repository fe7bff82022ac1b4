"""0.10 executions: WebSocket attach, stdin and control frames, re-attach by offsets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws

from tools.boxlite_server import RunningServer

pytestmark = pytest.mark.anyio

ROOT = "/v1"


@dataclass
class Received:
    streams: dict[int, bytes] = field(default_factory=lambda: {1: b"", 2: b""})
    exit: dict[str, object] | None = None
    errors: list[dict[str, object]] = field(default_factory=list)

    def offsets(self) -> str:
        return f"stdout_offset={len(self.streams[1])}&stderr_offset={len(self.streams[2])}"


async def start(http: httpx.AsyncClient, script: str, box: str = "ws") -> str:
    if (await http.head(f"{ROOT}/boxes/{box}")).status_code == 404:
        await http.post(f"{ROOT}/boxes", json={"name": box})
    response = await http.post(
        f"{ROOT}/boxes/{box}/exec", json={"command": "sh", "args": ["-c", script]}
    )
    assert response.status_code == 201, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def pump(ws: AsyncWebSocketSession, got: Received, frames: int | None = None) -> None:
    """Read frames into ``got`` until the exit frame (or ``frames`` frames)."""
    count = 0
    while frames is None or count < frames:
        message = await ws.receive()
        count += 1
        data = message.data
        if isinstance(data, bytes | bytearray):
            got.streams[data[0]] += bytes(data[1:])
            continue
        frame = json.loads(data)
        if frame["type"] == "exit":
            got.exit = frame
            return
        got.errors.append(frame)


def url(server: RunningServer, eid: str, query: str = "", box: str = "ws") -> str:
    return f"{server.url}{ROOT}/boxes/{box}/executions/{eid}/attach" + (
        f"?{query}" if query else ""
    )


async def test_attach_streams_and_exits(server: RunningServer, http: httpx.AsyncClient) -> None:
    eid = await start(http, "echo out; echo err >&2; exit 5")
    got = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await pump(ws, got)
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive()
        assert closed.value.code == 1000
    assert got.streams == {1: b"out\n", 2: b"err\n"}
    assert got.exit is not None and got.exit["exit_code"] == 5
    assert got.exit["stdout_bytes"] == 4 and got.exit["stderr_bytes"] == 4
    status = (await http.get(f"{ROOT}/boxes/ws/executions/{eid}")).json()
    assert status == {**status, "status": "completed", "exit_code": 5}


async def test_stdin_frames_and_eof(server: RunningServer, http: httpx.AsyncClient) -> None:
    eid = await start(http, "cat; echo done")
    got = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await ws.send_bytes(b"abc ")
        await ws.send_bytes(b"def\n")
        await ws.send_text('{"type":"stdin_eof"}')
        await pump(ws, got)
    assert got.streams[1] == b"abc def\ndone\n" and got.exit is not None


async def test_reattach_with_offsets_gets_the_rest_once(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    script = "for i in $(seq 1 30); do echo out$i; echo err$i >&2; sleep 0.01; done"
    eid = await start(http, script)
    got = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await pump(ws, got, frames=7)  # then drop the socket mid-stream
    async with aconnect_ws(url(server, eid, got.offsets()), http) as ws:
        await pump(ws, got)
    assert got.streams[1] == b"".join(b"out%d\n" % i for i in range(1, 31))
    assert got.streams[2] == b"".join(b"err%d\n" % i for i in range(1, 31))
    # A fresh attach (no offsets) after the exit replays everything kept.
    again = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await pump(ws, again)
    assert again.streams == got.streams
    with pytest.raises(WebSocketUpgradeError) as beyond:
        async with aconnect_ws(url(server, eid, "stdout_offset=999999"), http):
            pass
    assert beyond.value.response.status_code == 400


async def test_one_attach_at_a_time(server: RunningServer, http: httpx.AsyncClient) -> None:
    eid = await start(http, "sleep 2; echo late")
    async with aconnect_ws(url(server, eid), http):
        with pytest.raises(WebSocketUpgradeError) as second:
            async with aconnect_ws(url(server, eid), http):
                pass
        assert second.value.response.status_code == 409
        # The denial carries the documented error body (read here without httpx-ws).
        denied = await http.get(
            url(server, eid),
            headers={
                "connection": "upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert denied.status_code == 409
        assert denied.json()["error"]["type"] == "InvalidStateError"


async def test_kill_by_delete_and_signals(server: RunningServer, http: httpx.AsyncClient) -> None:
    eid = await start(http, "trap 'echo got-int' INT; echo ready; while true; do sleep 0.05; done")
    got = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await pump(ws, got, frames=1)
        await ws.send_text('{"type":"signal","sig":9}')  # not allowed: error frame
        await ws.send_text('{"type":"signal","sig":2}')
        await ws.send_text('{"type":"bogus"}')
        while b"got-int" not in got.streams[1]:
            await pump(ws, got, frames=1)
        assert (
            await http.post(f"{ROOT}/boxes/ws/executions/{eid}/signal", json={"signal": 9})
        ).status_code == 400
        deleted = await http.delete(f"{ROOT}/boxes/ws/executions/{eid}")
        assert deleted.status_code == 204
        await pump(ws, got)
    assert got.exit is not None and got.exit["exit_code"] == -9
    assert len(got.errors) == 2 and all(e["type"] == "error" for e in got.errors)
    gone = await http.get(f"{ROOT}/boxes/ws/executions/{eid}")
    assert gone.status_code == 404


async def test_unknown_execution_is_404(server: RunningServer, http: httpx.AsyncClient) -> None:
    await http.post(f"{ROOT}/boxes", json={"name": "ws"})
    with pytest.raises(WebSocketUpgradeError) as missing:
        async with aconnect_ws(url(server, "exec-nope"), http):
            pass
    assert missing.value.response.status_code == 404


async def test_large_output_in_bounded_frames(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    eid = await start(http, "head -c 8388608 /dev/zero")
    got = Received()
    async with aconnect_ws(url(server, eid, "max_frame_bytes=65535"), http) as ws:
        await pump(ws, got)
    assert got.streams[1] == b"\0" * 8388608


async def test_tty_session_0_9(server: RunningServer, http: httpx.AsyncClient) -> None:
    await http.post("/v1/default/boxes", json={"name": "tty"})
    query = urlencode(
        [
            ("command", "sh"),
            ("args", "-c"),
            ("args", "stty size; read x; echo got=$x"),
            ("cols", 100),
            ("rows", 30),
        ]
    )
    output = b""
    async with aconnect_ws(f"{server.url}/v1/default/boxes/tty/exec/tty?{query}", http) as ws:
        while b"30 100" not in output:
            output += await ws.receive_bytes()
        await ws.send_bytes(b"hello\r")
        while True:
            message = (await ws.receive()).data
            if isinstance(message, str):
                assert json.loads(message) == {
                    **json.loads(message),
                    "type": "exit",
                    "exit_code": 0,
                }
                break
            output += bytes(message)
    assert b"got=hello" in output


async def test_tty_exec_resize_over_attach(server: RunningServer, http: httpx.AsyncClient) -> None:
    await http.post(f"{ROOT}/boxes", json={"name": "ws"})
    eid = (
        await http.post(
            f"{ROOT}/boxes/ws/exec",
            json={"command": "sh", "args": ["-c", "read x; stty size"], "tty": True},
        )
    ).json()["execution_id"]
    got = Received()
    async with aconnect_ws(url(server, eid), http) as ws:
        await ws.send_text('{"type":"resize","cols":90,"rows":33}')
        await ws.send_bytes(b"go\r")
        await pump(ws, got)
    assert b"33 90" in got.streams[1] and got.streams[2] == b""
