"""A lean client WebSocket over a connection httpx has upgraded (RFC 6455 via wsproto).

Why not ``httpx_ws.AsyncWebSocketSession``: it runs a task group with a receive
task and a keep-alive task per socket, and hands messages over a memory stream.
An exec attach is one socket per command on the hot path, read by one task (the
pump), so this session does its work inside that task's ``receive()`` instead:
no extra tasks, no queue, about half a millisecond less per exec.

- Pings from the server are answered as they are read; pongs are dropped.
- Keep-alive: after ``ping_interval`` seconds without a byte from the server,
  ``receive()`` sends a ping; after as long again still without one, the
  connection is dead and ``receive()`` raises ``WebSocketClosed(1006)``.
- A close from the server is answered and raised as ``WebSocketClosed(code)``.
- ``send_*`` may be called from other tasks (stdin) while ``receive()`` waits.
- A message over ``max_message_bytes`` closes the socket (1009) and raises
  ``WebSocketTooLarge``: memory stays bounded whatever the server sends.
"""

from __future__ import annotations

# asyncio: an uncontended asyncio.Lock takes no loop turn (anyio's yields on each acquire).
import asyncio
import base64
import hashlib
from collections import deque

import httpcore
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..errors import InternalError

#: Bytes asked of the socket per read.
READ_BYTES = 256 * 1024
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketClosed(Exception):
    """The socket is closed: by the server (its code), or broken (1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class WebSocketProtocolError(InternalError):
    """The server broke RFC 6455 (bad opcode, invalid UTF-8 text...): a fault, not a drop."""


class WebSocketTooLarge(InternalError):
    """A message over the size cap: a server fault, not a dropped connection."""


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``Sec-WebSocket-Key`` (RFC 6455)."""
    digest = hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


class WebSocket:
    """One client WebSocket on an upgraded network stream."""

    def __init__(
        self,
        stream: httpcore.AsyncNetworkStream,
        *,
        ping_interval: float | None = 20.0,
        max_message_bytes: int = 4 * 1024 * 1024,
        headers: dict[str, str] | None = None,
        initial: bytes = b"",
    ) -> None:
        #: The handshake answer's headers, names in lower case.
        self.headers = headers or {}
        #: Bytes that arrived with the handshake's answer, read before the stream.
        self._initial = initial
        self._stream = stream
        self._max_message_bytes = max_message_bytes
        self._partial_bytes = 0
        self._ws = Connection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()
        self._partial: list[bytes | bytearray | str] = []
        self._ping_interval = ping_interval
        self._write_lock = asyncio.Lock()
        self._closed = False

    async def receive(self) -> BytesMessage | TextMessage:
        """The next whole message; raises WebSocketClosed when there is none to come."""
        pinged = False
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, BytesMessage | TextMessage):
                    self._partial_bytes += len(event.data)
                    if self._partial_bytes > self._max_message_bytes:
                        await self.aclose(1009)
                        raise WebSocketTooLarge(
                            f"the server sent a WebSocket message over "
                            f"{self._max_message_bytes} bytes; refused"
                        )
                    if not event.message_finished:
                        self._partial.append(event.data)
                        continue
                    self._partial_bytes = 0
                    if not self._partial:
                        return event
                    self._partial.append(event.data)
                    pieces, self._partial = self._partial, []
                    if isinstance(event, BytesMessage):
                        return BytesMessage(b"".join(p for p in pieces if not isinstance(p, str)))
                    return TextMessage("".join(p for p in pieces if isinstance(p, str)))
                if isinstance(event, Ping):
                    await self._write(event.response())
                elif isinstance(event, CloseConnection):
                    await self._close_reply(event)
                    raise WebSocketClosed(event.code, event.reason or "")
            if self._closed:
                raise WebSocketClosed(1006, "closed")
            try:
                data, self._initial = self._initial, b""
                if not data:
                    data = await self._stream.read(READ_BYTES, self._ping_interval)
            except httpcore.ReadTimeout:
                if pinged:
                    await self.aclose()
                    raise WebSocketClosed(1006, "no answer to a keep-alive ping") from None
                pinged = True
                await self._write(Ping(b"keepalive"))
                continue
            except (httpcore.ReadError, OSError) as exc:
                self._closed = True
                raise WebSocketClosed(1006, type(exc).__name__) from None
            if not data:
                self._closed = True
                raise WebSocketClosed(1006, "the connection ended")
            pinged = False
            try:
                self._ws.receive_data(data)
                self._events.extend(self._ws.events())
            except RemoteProtocolError as exc:
                await self.aclose(1002)
                raise WebSocketProtocolError(
                    f"the server broke the WebSocket protocol ({str(exc)[:120]})"
                ) from None

    async def send_bytes(self, data: bytes) -> None:
        await self._write(BytesMessage(data))

    async def send_text(self, text: str) -> None:
        await self._write(TextMessage(text))

    async def _write(self, event: Event) -> None:
        if self._closed:
            raise WebSocketClosed(1006, "closed")
        try:
            payload = self._ws.send(event)
            async with self._write_lock:
                await self._stream.write(payload)
        except (LocalProtocolError, httpcore.WriteError, OSError) as exc:
            self._closed = True
            raise WebSocketClosed(1006, type(exc).__name__) from None

    async def _close_reply(self, event: CloseConnection) -> None:
        try:
            if not self._closed:
                payload = self._ws.send(event.response())
                async with self._write_lock:
                    await self._stream.write(payload)
        except (LocalProtocolError, httpcore.WriteError, OSError):
            pass
        finally:
            self._closed = True

    async def aclose(self, code: int = 1000) -> None:
        """Say goodbye (best effort) and close the connection."""
        if not self._closed:
            self._closed = True
            try:
                payload = self._ws.send(CloseConnection(code))
                async with self._write_lock:
                    await self._stream.write(payload)
            except (LocalProtocolError, httpcore.WriteError, OSError):
                pass
        await self._stream.aclose()
