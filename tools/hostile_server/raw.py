"""Breaking HTTP on purpose: write raw bytes on a request's own TCP connection.

Starlette and uvicorn only send well-formed HTTP and WebSocket frames. Where a
behaviour must send what no framework would (a garbage status line, a header that
never ends, a chunked body with a bad size, a WebSocket frame with a reserved
opcode or a 2^40-byte length), the handler takes the connection over: uvicorn's
protocol classes are subclassed to record each connection's transport by peer
address, and ``RawResponse`` writes bytes straight onto it, then closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

Address = tuple[str, int]
#: Unsent bytes a raw writer lets pile up before it waits for the client to read.
HIGH_WATER = 1024 * 1024


class Transports:
    """Live connections by client address."""

    def __init__(self) -> None:
        self._by_peer: dict[Address, asyncio.Transport] = {}

    def add(self, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        if peer is not None:
            self._by_peer[peer] = transport

    def remove(self, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        if peer is not None and self._by_peer.get(peer) is transport:
            del self._by_peer[peer]

    def of(self, scope: Scope) -> asyncio.Transport:
        client = scope.get("client")
        transport = self._by_peer.get((client[0], client[1])) if client else None
        if transport is None:
            raise RuntimeError(f"no transport recorded for client {client!r}")
        return transport


def _peer(transport: asyncio.BaseTransport) -> Address | None:
    peer = transport.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if peer else None


def protocol_classes(registry: Transports) -> tuple[type[H11Protocol], type[WSProtocol]]:
    """uvicorn protocol classes that record their transports in ``registry``."""

    class Recording(asyncio.Protocol):
        """Put first in the bases: records the transport, then lets the protocol run."""

        transport: asyncio.Transport

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            registry.add(transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.remove(self.transport)
            super().connection_lost(exc)

    class RecordedHttp(Recording, H11Protocol):
        pass

    class RecordedWebSocket(Recording, WSProtocol):
        pass

    return RecordedHttp, RecordedWebSocket


async def write_raw(transport: asyncio.Transport, chunks: AsyncIterator[bytes]) -> None:
    """Write every chunk, waiting while the client is ``HIGH_WATER`` bytes behind."""
    async for chunk in chunks:
        if transport.is_closing():
            return
        transport.write(chunk)
        await asyncio.sleep(0)
        # Transports offer no awaitable drain without a protocol of our own: poll.
        while transport.get_write_buffer_size() > HIGH_WATER and not transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


class RawResponse(Response):
    """Sends ``chunks`` as raw bytes instead of an HTTP response, then closes (FIN)."""

    def __init__(self, registry: Transports, chunks: Callable[[], AsyncIterator[bytes]]) -> None:
        super().__init__(status_code=599)
        self._registry = registry
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = self._registry.of(scope)

        async def until_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.get_running_loop().create_task(until_gone())
        writer = asyncio.get_running_loop().create_task(write_raw(transport, self._chunks()))
        await asyncio.wait({gone, writer}, return_when=asyncio.FIRST_COMPLETED)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        transport.close()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


def ws_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """One RFC 6455 frame, any field settable (``length`` may lie about the payload)."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (opcode & 0x0F)
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 1 << 16:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header += mask
    return header + payload


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value RFC 6455 requires for a client's key."""
    import base64
    import hashlib

    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()
