"""The sockets under httpcore: plain asyncio streams, no anyio layer on the hot path.

Why hand-written: httpcore's default backend goes through anyio's socket streams,
whose ``send`` yields to the event loop after every write (an extra loop turn,
``cancel_shielded_checkpoint``), whose ``receive`` pauses and resumes the
transport's reading around every wait, and around which httpcore opens an anyio
cancel scope per read and per write. An exec round trip of ``true`` makes about a
dozen such reads and writes over two connections; profiled (``docs/benchmarks.md``),
that layer was a fifth of the client's CPU per round trip. ``AsyncioStream`` is an
``asyncio.Protocol`` with a bounded receive buffer: a write is ``transport.write``
(waiting only when the kernel's buffer is full), a read returns buffered bytes
without yielding or waits on one future, and a timeout is one timer handle.

Semantics follow httpcore's network-stream interface: ``read`` returns ``b""`` at
end of stream and raises ``httpcore.ReadError``/``ReadTimeout``; ``write`` raises
``WriteError``/``WriteTimeout``; connecting raises ``ConnectError``/``ConnectTimeout``.
Memory stays bounded: reading from the socket pauses while ``HIGH_WATER`` bytes
wait unread. ``is_readable`` (the pool's liveness question for an idle
connection) is whether anything arrived or the peer closed, and one ``poll()``.

Outside asyncio (trio), with socket options, or for Unix sockets, the wrapped
backend (httpcore's own) does the work.
"""

from __future__ import annotations

# asyncio: this module is the asyncio transport under httpcore, by design.
import asyncio
import ipaddress
import select
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore

#: Unread bytes at which the stream stops reading from the socket until drained.
HIGH_WATER = 4 * 1024 * 1024
#: Delay before racing the next address of a host name (RFC 8305), as anyio does.
HAPPY_EYEBALLS_DELAY = 0.25


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def readable(sock: _HasFileno) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it
    (or broke the protocol); either way it must not be reused."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Receiver(asyncio.Protocol):
    """Collects what the socket delivers; wakes the one reader and the writers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False  # end of stream or connection lost
        self.error: BaseException | None = None
        self.paused = False
        self.reader: asyncio.Future[None] | None = None
        self.writable = True
        self.drainers: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake_reader()
        return False  # close the transport: HTTP/1.1 and WebSocket never half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.writable = False
        self._wake_reader()
        drainers, self.drainers = self.drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        drainers, self.drainers = self.drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_reader(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)


async def _wait(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[None],
    timeout: float | None,  # noqa: ASYNC109 (a timer handle is cheaper than asyncio.timeout)
) -> None:
    """Await ``waiter``; TimeoutError after ``timeout`` seconds (a timer, not a scope)."""
    timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection as httpcore's network stream (module docstring)."""

    def __init__(self, transport: asyncio.Transport, receiver: _Receiver) -> None:
        self._transport = transport
        self._receiver = receiver
        self._loop = asyncio.get_running_loop()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        receiver = self._receiver
        if not receiver.chunks and not receiver.ended:
            waiter = receiver.reader = self._loop.create_future()
            try:
                await _wait(self._loop, waiter, timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout("timed out reading from the server") from exc
            finally:
                receiver.reader = None
        if receiver.chunks:
            chunk = receiver.chunks.popleft()
            if receiver.chunks and len(chunk) < max_bytes:
                # Several small arrivals: hand them over as one (fewer frames parsed
                # per call, as when the kernel's buffer is read in one go).
                parts = [chunk]
                size = len(chunk)
                while receiver.chunks and size + len(receiver.chunks[0]) <= max_bytes:
                    part = receiver.chunks.popleft()
                    parts.append(part)
                    size += len(part)
                chunk = b"".join(parts)
            if len(chunk) > max_bytes:
                receiver.chunks.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
            receiver.buffered -= len(chunk)
            if receiver.paused and receiver.buffered < HIGH_WATER // 2:
                receiver.paused = False
                self._transport.resume_reading()
            return chunk
        if receiver.error is not None:
            raise httpcore.ReadError(str(receiver.error) or type(receiver.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        if not buffer:
            return
        receiver = self._receiver
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if receiver.writable:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        receiver.drainers.append(waiter)
        try:
            await _wait(self._loop, waiter, timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out writing to the server") from exc
        if receiver.error is not None or self._transport.is_closing():
            raise httpcore.WriteError("the connection was lost while writing")

    async def aclose(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()  # a peer that does not read must not hold the socket
        else:
            transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                transport = await self._loop.start_tls(
                    self._transport, self._receiver, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("the TLS handshake ended the connection")
        assert isinstance(transport, asyncio.Transport)
        self._receiver.transport = transport
        return AsyncioStream(transport, self._receiver)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":
            receiver = self._receiver
            if receiver.chunks or receiver.ended:
                return True
            sock = transport.get_extra_info("socket")
            return sock is not None and readable(sock)
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects with ``loop.create_connection``; everything else to ``fallback``."""

    def __init__(self, fallback: httpcore.AsyncNetworkBackend) -> None:
        self._fallback = fallback

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): httpcore's own backend
            loop = None
        if loop is None or socket_options:
            return await self._fallback.connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        try:
            async with asyncio.timeout(timeout):
                transport, receiver = await loop.create_connection(
                    _Receiver,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    # Racing addresses costs a task; an IP literal has only one.
                    happy_eyeballs_delay=None if _is_ip(host) else HAPPY_EYEBALLS_DELAY,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        assert isinstance(transport, asyncio.Transport)
        return AsyncioStream(transport, receiver)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._fallback.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._fallback.sleep(seconds)
