"""The fault proxy over real sockets: it forwards bytes unchanged, cuts exactly where its
seeded plan says in either direction, and labels where a cut landed."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from tools.faultproxy import CutPolicy, FaultProxy
from tools.faultproxy.tracker import ConnectionTracker, route_of

pytestmark = pytest.mark.anyio

PAYLOAD = os.urandom(300_000)


@contextlib.asynccontextmanager
async def upstream(send: bytes) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that sends ``send`` to each client and records what each client sent."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def read_all() -> None:
            data = bytearray()
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    data += chunk
            received.append(bytes(data))

        reading = asyncio.create_task(read_all())
        with contextlib.suppress(ConnectionError):
            writer.write(send)
            await writer.drain()
            writer.write_eof()
        await reading
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()


async def exchange(port: int, send: bytes) -> bytes:
    """Send ``send``, then read until the connection ends (however it ends)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    with contextlib.suppress(ConnectionError):
        writer.write(send)
        await writer.drain()
        writer.write_eof()
    data = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    writer.close()
    return bytes(data)


def test_plans_are_seeded_and_follow_the_probability() -> None:
    policy = CutPolicy(probability=0.3, seed=5)
    assert [policy.plan(i, j) for i in range(50) for j in range(4)] == [
        CutPolicy(probability=0.3, seed=5).plan(i, j) for i in range(50) for j in range(4)
    ]
    cut = sum(
        policy.plan(i).offset("up") is not None or policy.plan(i).offset("down") is not None
        for i in range(2000)
    )
    assert 500 < cut < 700  # about 30 %
    assert all(CutPolicy(probability=0.0).plan(i) == CutPolicy().plan(i) for i in range(20))
    stream = CutPolicy(probability=0.0, stream_probability=1.0).plan(3, 1, stream=True)
    assert stream.down is not None and stream.up is None and stream.in_body
    with pytest.raises(ValueError):
        CutPolicy(probability=1.5)


async def test_without_cuts_every_byte_arrives_both_ways() -> None:
    sent_up = os.urandom(200_000)
    async with (
        upstream(PAYLOAD) as (port, received),
        FaultProxy("127.0.0.1", port, CutPolicy(probability=0.0)) as proxy,
    ):
        got = await exchange(proxy.port, sent_up)
        await asyncio.sleep(0.05)
    assert got == PAYLOAD and received == [sent_up]
    assert proxy.stats.cuts == [] and proxy.stats.bytes["down"] == len(PAYLOAD)


@pytest.mark.parametrize("direction", ["down", "up"])
async def test_a_cut_lands_on_the_planned_byte(direction: str) -> None:
    policy = CutPolicy(
        probability=1.0,
        per="connection",
        directions=(direction,),  # type: ignore[arg-type]
        window_bytes=250_000,
        scale="uniform",
        mode="close",
        seed=11,
    )
    offset = policy.plan(0).offset(direction)  # type: ignore[arg-type]
    assert offset is not None
    # Cutting up, the upstream sends nothing: closing a socket with unread bytes sends
    # a RST, and a RST discards what the upstream had not read yet.
    async with (
        upstream(PAYLOAD if direction == "down" else b"") as (port, received),
        FaultProxy("127.0.0.1", port, policy) as proxy,
    ):
        got = await exchange(proxy.port, PAYLOAD)
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
    [cut] = proxy.stats.cuts
    assert (cut.direction, cut.offset) == (direction, offset)
    if direction == "down":
        assert got == PAYLOAD[:offset]
    else:
        assert received == [PAYLOAD[:offset]]


async def test_a_refused_upstream_closes_the_client() -> None:
    async with FaultProxy("127.0.0.1", 1, CutPolicy()) as proxy:
        assert await exchange(proxy.port, b"GET / HTTP/1.1\r\n\r\n") == b""
    assert proxy.stats.refused == 1


def test_labels_say_where_in_a_stream_a_cut_lands() -> None:
    tracker = ConnectionTracker()
    tracker.up(
        b"GET /v1/default/boxes/01HXABCDEF12/executions/exec-01HXABCDEF/output "
        b"HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    assert tracker.stream and tracker.label("up") == "request"
    assert tracker.route == "GET /v1/default/boxes/{id}/executions/{id}/output"
    tracker.down(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    assert tracker.label("down") == "sse-between-events"
    event = b'id: 6-0\nevent: stdout\ndata: {"data":"aGVsbG8K"}\n\n'
    chunk = b"%x\r\n" % len(event) + event + b"\r\n"
    tracker.down(chunk[:20])
    assert tracker.label("down") == "sse-mid-event"
    tracker.down(chunk[20:])
    assert tracker.label("down") == "sse-between-events"

    ws = ConnectionTracker()
    ws.up(b"GET /v1/boxes/b/executions/e/attach HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    ws.down(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    frame = bytes((0x82, 126)) + (300).to_bytes(2, "big") + b"\x01" + b"x" * 299
    ws.down(frame[:100])
    assert ws.label("down") == "ws-mid-frame"
    ws.down(frame[100:])
    assert ws.label("down") == "ws-between-frames" and ws.label("up") == "ws-up"
    assert route_of("POST", "/v1/boxes?x=1") == "POST /v1/boxes"
