"""The asyncio streams under httpcore (``runtime/rest/netstream.py``) and the upgrade
written on a pre-opened connection (``runtime/rest/upgrade.py``), each on its own.

Real sockets on 127.0.0.1: raw asyncio servers that send exactly what each case needs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpcore
import pytest

from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.rest.netstream import HIGH_WATER, AsyncioBackend
from boxlite_mcp.runtime.types import ExecRequest

from .test_robustness import raw_answer

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BACKEND = AsyncioBackend(httpcore.AnyIOBackend())


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_reads_what_arrives_then_end_of_stream() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5) + b" back")
        await writer.drain()
        writer.close()

    async with raw_server(handle) as port:
        stream = await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"hello", timeout=5)
        received = b""
        while chunk := await stream.read(3, timeout=5):
            assert len(chunk) <= 3
            received += chunk
        assert received == b"hello back"
        assert await stream.read(3, timeout=5) == b""
        await stream.aclose()


async def test_a_read_that_gets_nothing_times_out() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # silent until the client goes

    async with raw_server(handle) as port:
        stream = await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(10, timeout=0.1)
        await stream.aclose()


async def test_reading_pauses_while_the_buffer_is_full() -> None:
    """A server that floods a client that does not read: memory stays bounded."""
    sent = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        block = b"x" * 65536
        try:
            while sent < 64 * HIGH_WATER:
                writer.write(block)
                await asyncio.wait_for(writer.drain(), 0.5)
                sent += len(block)
        except (TimeoutError, ConnectionError):
            pass  # the client stopped reading: what it asked for

    async with raw_server(handle) as port:
        stream = await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)
        await asyncio.sleep(1.0)
        receiver = stream._receiver  # type: ignore[attr-defined]
        assert receiver.paused
        assert receiver.buffered < HIGH_WATER + 1024 * 1024
        assert sent < 8 * HIGH_WATER  # the kernel's buffers, not the stream's, took the rest
        total = 0
        while total < 2 * HIGH_WATER:
            total += len(await stream.read(1 << 20, timeout=5))
        await stream.aclose()


async def test_liveness_and_writes_after_the_peer_closed() -> None:
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        writer.close()
        closed.set()

    async with raw_server(handle) as port:
        stream = await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("socket") is not None
        assert stream.get_extra_info("server_addr")[1] == port
        await stream.write(b"x", timeout=5)
        await closed.wait()
        assert await stream.read(10, timeout=5) == b""
        assert stream.get_extra_info("is_readable") is True
        with pytest.raises(httpcore.WriteError):
            for _ in range(3):  # the first write after a close may still be accepted
                await stream.write(b"more", timeout=5)
                await asyncio.sleep(0.05)
        await stream.aclose()


async def test_connecting_to_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpcore.ConnectError):
        await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)


def _accept(key: bytes) -> bytes:
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest)


def _exit_frame() -> bytes:
    payload = b'{"type":"exit","exit_code":3}'
    return bytes([0x81, len(payload)]) + payload  # FIN + text, unmasked (server to client)


async def _exec_against(attach: Callable[[bytes, int], bytes]) -> tuple[int, list[bytes]]:
    """Run a command against a raw 0.10 server; ``attach(key, n)`` writes the n-th
    attach's answer (and what follows it, in the same write)."""
    attaches: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                line = head.split(b"\r\n", 1)[0]
                fields = dict(h.partition(b":")[::2] for h in head.split(b"\r\n")[1:])
                fields = {k.lower(): v.strip() for k, v in fields.items()}
                await reader.readexactly(int(fields.get(b"content-length", b"0")))
                if b"/attach" in line:
                    attaches.append(line)
                    answer = attach(fields[b"sec-websocket-key"], len(attaches))
                    writer.write(answer)
                    await writer.drain()
                    if b" 101 " not in answer:
                        continue
                    await reader.read(1024)  # the client's close frame
                    break
                writer.write(raw_answer(line))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async with raw_server(handle) as port:
        settings = RestSettings(url=f"http://127.0.0.1:{port}", api="0.10", path_prefix="")
        async with RestRuntime(settings) as runtime:
            box = await runtime.get("b1")
            execution = await box.exec(ExecRequest(command="true"))
            result = await asyncio.wait_for(execution.wait(), 10)
    return result.exit_code, attaches


def _switching(key: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _accept(key) + b"\r\n\r\n"
    )


async def test_frames_in_the_same_segment_as_the_101_are_not_lost() -> None:
    """The exit frame right behind the handshake's head, in one write: the bytes read
    past the head reach the WebSocket first."""
    code, attaches = await _exec_against(lambda key, n: _switching(key) + _exit_frame())
    assert code == 3 and len(attaches) == 1


async def test_a_refused_upgrade_on_the_pre_opened_connection_goes_through_the_pool() -> None:
    """A 409 on the pre-opened connection is not this parser's to map: the pooled path
    asks again (a GET, harmless) and gets the 101."""
    conflict = (
        b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    code, attaches = await _exec_against(
        lambda key, n: conflict if n == 1 else _switching(key) + _exit_frame()
    )
    assert code == 3 and len(attaches) == 2
