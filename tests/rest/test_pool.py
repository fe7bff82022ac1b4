"""The REST client's connection pool under concurrency (``runtime/rest/pool.py``).

Real servers on 127.0.0.1: a Starlette app on uvicorn that records each request's
client port (one port per TCP connection), and a raw asyncio server that closes
idle connections behind the client's back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxlite_mcp.runtime.errors import BoxliteError
from boxlite_mcp.runtime.rest import RestSettings
from boxlite_mcp.runtime.rest.client import RestClient
from boxlite_mcp.runtime.rest.netstream import AsyncioBackend
from boxlite_mcp.runtime.rest.netstream import readable as _readable
from boxlite_mcp.runtime.rest.pool import SHARDS, ShardedTransport

from .serving import Recorder, serve

pytestmark = pytest.mark.anyio


async def _slow(request: Request) -> Response:
    await asyncio.sleep(0.05)  # long enough for concurrent requests to overlap
    return Response(b"{}", media_type="application/json")


@pytest.fixture
async def slow_server() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder(Starlette(routes=[Route("/v1/slow", _slow, methods=["GET", "POST"])]))
    async with serve(recorder) as url:
        yield url, recorder


def _client(url: str, **overrides: object) -> RestClient:
    return RestClient(RestSettings(url=url, api="0.10", path_prefix="", **overrides))  # type: ignore[arg-type]


async def test_keep_alive_holds_under_concurrency(slow_server: tuple[str, Recorder]) -> None:
    """Three rounds of 48 concurrent requests reuse the first round's connections.

    With httpcore's pool and a keep-alive limit below the concurrency, each round
    opened most of its connections afresh (about 48 + 2 x 28 in all)."""
    url, recorder = slow_server
    client = _client(url)
    try:
        for _ in range(3):
            await asyncio.gather(
                *(client.request("GET", f"{url}/v1/slow", what="slow") for _ in range(48))
            )
    finally:
        await client.aclose()
    ports = {r.client_port for r in recorder.requests}
    assert len(recorder.requests) == 144
    assert len(ports) <= 56, f"{len(ports)} connections for 3 rounds of 48"


async def test_sequential_requests_share_one_connection(
    slow_server: tuple[str, Recorder],
) -> None:
    url, recorder = slow_server
    client = _client(url)
    try:
        for _ in range(10):
            await client.request("POST", f"{url}/v1/slow", json={}, what="slow")
    finally:
        await client.aclose()
    assert len({r.client_port for r in recorder.requests}) == 1


async def test_in_flight_counts_return_to_zero(slow_server: tuple[str, Recorder]) -> None:
    """Every request leaves its pool's count when its response is closed, whether read,
    streamed, or never sent (a refused connection): the least busy pool stays right."""
    url, _ = slow_server
    transport = ShardedTransport(httpx.Limits(max_connections=100))
    async with httpx.AsyncClient(transport=transport) as http:
        responses = await asyncio.gather(*(http.get(f"{url}/v1/slow") for _ in range(20)))
        assert all(r.status_code == 200 for r in responses)
        async with http.stream("GET", f"{url}/v1/slow") as streamed:
            assert transport._in_flight.count(1) == 1
            await streamed.aread()
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{closed_port}/")
    assert transport._in_flight == [0] * SHARDS


async def test_every_pool_gets_the_cheap_liveness_check() -> None:
    transport = ShardedTransport(httpx.Limits(max_connections=100))
    try:
        backends = [shard._pool._network_backend for shard in transport._shards]
        assert len(backends) == SHARDS
        assert all(isinstance(b, AsyncioBackend) for b in backends)
    finally:
        await transport.aclose()


async def test_fewer_pools_than_connections_allowed() -> None:
    transport = ShardedTransport(httpx.Limits(max_connections=3))
    try:
        assert len(transport._shards) == 3
    finally:
        await transport.aclose()


def test_readable_means_the_peer_closed() -> None:
    """The liveness check alone: an idle socket is not readable until its peer closes."""
    ours, theirs = socket.socketpair()
    with ours:
        assert not _readable(ours)
        theirs.close()
        assert _readable(ours)


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """A server that closes each connection 50 ms after answering (no ``Connection:
    close``): a POST without an idempotency key, which the client never retries,
    still succeeds on a fresh connection because the dead one is noticed."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # the JSON body "{}"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            )
            await writer.drain()
            await asyncio.sleep(0.05)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = _client(url, retries=0)
    try:
        for _ in range(3):
            await client.request("POST", f"{url}/v1/x", json={}, idempotent=False, what="x")
            await asyncio.sleep(0.2)
    except BoxliteError as exc:  # pragma: no cover - the failure this test guards against
        pytest.fail(f"a dead keep-alive connection was reused: {exc}")
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 3
