"""The HTTP connection pool under load: keep-alive that holds, scans that stay short.

Why this exists (profiled in ``docs/benchmarks.md``, "The REST client at load"):
at 64 concurrent execs, httpx's pool (httpcore 1.0) cost the client 5 to 9 ms of
CPU per exec and the run's p99 went past 2 s, for three reasons in httpcore:

- **Keep-alive collapses under concurrency.** The pool closes an idle connection
  whenever the number of *all* its connections exceeds ``max_keepalive_connections``
  (it counts every connection, not the idle ones). With 64 requests in flight
  and the old default of 20, nearly every connection was closed after one
  request, so each ``POST /exec`` paid a new TCP handshake on both sides.
  ``RestSettings.max_keepalive_connections`` therefore defaults to as many idle
  connections as the pool may open (``max_connections``).
- **The liveness check is expensive.** Every time a request is queued or a
  response closed, the pool walks all its connections and asks each idle one
  whether its socket is readable (the server closed it). Through httpcore's
  anyio backend each such question builds anyio's socket attribute table,
  ``getpeername()`` included, before one ``poll()``: tens of microseconds per
  connection per event, quadratic in the concurrency. ``FastLivenessBackend``
  wraps the network backend so that the question is the ``poll()`` alone, on a
  socket looked up once per connection. Its reads and writes also skip the
  anyio cancel scope httpcore opens for each (about 25 per exec, 13 % of the
  client's CPU on a round trip of ``true``): ``asyncio.timeout`` on the same
  anyio byte stream, with httpcore's exceptions, when the stream is httpcore's
  anyio one (else the wrapped stream's own read and write).
- **The scan is quadratic.** For each idle connection, the same walk counts all
  connections again (a list built per idle connection), so one pool event at 64
  connections costs thousands of calls. ``ShardedTransport`` spreads concurrent
  requests over several independent pools (``SHARDS``, the least busy first),
  each a plain ``httpx.AsyncHTTPTransport`` holding a share of
  ``max_connections``: the same connections in total, each scan over an eighth.

Everything else (connecting, TLS, reads, writes, timeouts) is the wrapped
backend's. ``install`` is the one place that reaches into httpx's transport for
its pool; if httpx changes shape it does nothing and the client works as before,
only slower under load.
"""

from __future__ import annotations

# asyncio: asyncio.timeout is the cheap deadline this module exists for (anyio's is not).
import asyncio
import logging
import select
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

import anyio
import anyio.abc
import httpcore
import httpx

logger = logging.getLogger(__name__)


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _readable(sock: _HasFileno) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it
    (or broke the protocol); either way it must not be reused."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that answers ``is_readable`` with one ``poll()`` and reads and
    writes without an anyio cancel scope each (module docstring)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        # asyncio hands out a TransportSocket, not a socket.socket: anything with a fileno.
        sock = inner.get_extra_info("socket")
        self._socket: _HasFileno | None = sock if hasattr(sock, "fileno") else None
        # httpcore's anyio stream wraps one anyio byte stream; used directly when found.
        raw = getattr(inner, "_stream", None)
        self._raw: anyio.abc.ByteStream | None = (
            raw if isinstance(raw, anyio.abc.ByteStream) else None
        )

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        raw = self._raw
        if raw is None:
            return await self._inner.read(max_bytes, timeout)
        try:
            async with asyncio.timeout(timeout):
                return await raw.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        raw = self._raw
        if raw is None:
            await self._inner.write(buffer, timeout)
            return
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await raw.send(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class FastLivenessBackend(httpcore.AsyncNetworkBackend):
    """Wraps a network backend; its streams check liveness cheaply (module docstring)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _Stream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


#: Independent pools requests are spread over (fewer when ``max_connections`` is smaller).
SHARDS = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several ``httpx.AsyncHTTPTransport`` pools (module docstring).

    Each request goes to the pool with the fewest requests in flight, the first
    such: one caller at a time always uses the first pool and its keep-alive
    connection, concurrent callers spread evenly. A request is in flight until
    its response is closed. The limits are split evenly, rounded up.
    """

    def __init__(self, limits: httpx.Limits, shards: int = SHARDS) -> None:
        total = limits.max_connections or 100
        count = max(1, min(shards, total))
        keepalive = limits.max_keepalive_connections
        share = httpx.Limits(
            max_connections=-(-total // count),
            max_keepalive_connections=None if keepalive is None else -(-keepalive // count),
            keepalive_expiry=limits.keepalive_expiry,
        )
        self._shards = [httpx.AsyncHTTPTransport(limits=share) for _ in range(count)]
        for shard in self._shards:
            install(shard)
        self._in_flight = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loads = self._in_flight
        index = loads.index(min(loads))
        loads[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            loads[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Counted(response.stream, loads, index)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Counted(httpx.AsyncByteStream):
    """A response body that takes its request off its pool's in-flight count when closed."""

    def __init__(self, inner: httpx.AsyncByteStream, loads: list[int], index: int) -> None:
        self._inner = inner
        self._loads = loads
        self._index: int | None = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        if self._index is not None:
            self._loads[self._index] -= 1
            self._index = None
        await self._inner.aclose()


def install(transport: httpx.AsyncBaseTransport) -> bool:
    """Put ``FastLivenessBackend`` under an httpx transport's direct-connection pool.

    Only a plain ``httpx.AsyncHTTPTransport`` whose pool is an
    ``httpcore.AsyncConnectionPool`` (not a proxy, not a test's transport) is changed.
    True when installed.
    """
    pool = getattr(transport, "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool:
        return False
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        logger.debug("httpcore's pool has no network backend attribute; not installed")
        return False
    if not isinstance(backend, FastLivenessBackend):
        pool._network_backend = FastLivenessBackend(backend)
    return True
