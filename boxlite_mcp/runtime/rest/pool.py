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
  connection per event, quadratic in the concurrency. The pools' connections
  are ``netstream.AsyncioStream``s instead, which answer from what they already
  received and one ``poll()``, and read and write without anyio's per-call
  cancel scopes and yields (``netstream.py`` says why).
- **The scan is quadratic.** For each idle connection, the same walk counts all
  connections again (a list built per idle connection), so one pool event at 64
  connections costs thousands of calls. ``ShardedTransport`` spreads concurrent
  requests over several independent pools (``SHARDS``, the least busy first),
  each a plain ``httpx.AsyncHTTPTransport`` holding a share of
  ``max_connections``: the same connections in total, each scan over an eighth.

``install`` is the one place that reaches into httpx's transport for
its pool; if httpx changes shape it does nothing and the client works as before,
only slower under load.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpcore
import httpx

from .netstream import AsyncioBackend

logger = logging.getLogger(__name__)


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
    """Put ``netstream.AsyncioBackend`` under an httpx transport's direct-connection pool.

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
    if not isinstance(backend, AsyncioBackend):
        pool._network_backend = AsyncioBackend(backend)
    return True
