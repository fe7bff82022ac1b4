"""The hand-written HTTP/1.1 of the exec hot path (``runtime/rest/http1.py``), on its own
and through the client.

Raw asyncio servers on 127.0.0.1 write each answer byte for byte, so every framing
(Content-Length, chunked, until close) and every malformation is exactly what the
test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest

from boxlite_mcp.runtime.errors import InternalError
from boxlite_mcp.runtime.rest import RestSettings, http1
from boxlite_mcp.runtime.rest.client import RestClient
from boxlite_mcp.runtime.rest.http1 import Lane, parse_head, request_head
from boxlite_mcp.runtime.rest.netstream import AsyncioBackend

pytestmark = pytest.mark.anyio

BACKEND = AsyncioBackend(httpcore.AnyIOBackend())
Answer = Callable[[int, bytes], bytes]  # (request number, request head) -> raw answer


class Server:
    """Answers each request with ``answer(n, head)``; counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.close_after_answer = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answer(len(self.requests), head))
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with listener:
        yield server, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"


async def _connect(url: str) -> httpcore.AsyncNetworkStream:
    port = int(url.split(":")[2].split("/")[0])
    return await BACKEND.connect_tcp("127.0.0.1", port, timeout=5)


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n" + extra
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


async def _send(lane: Lane, url: str, body: bytes = b"{}", cap: int = 1 << 20) -> httpx.Response:
    response = await lane.send("POST", f"{url}/v1/boxes/b/exec", {"X-A": "1"}, body, cap)
    assert response is not None
    return response


async def test_requests_reuse_one_connection_and_arrive_whole() -> None:
    async with serving(lambda n, head: _json(b'{"n":%d}' % n)) as (server, url):
        lane = Lane(_connect)
        for n in range(1, 4):
            response = await _send(lane, url, b'{"command":"true"}')
            assert response.status_code == 201
            assert await response.aread() == b'{"n":%d}' % n
        await lane.aclose()
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/boxes/b/exec HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-A: 1" in head and b"\r\nContent-Length: 18" in head
    assert body == b'{"command":"true"}'


async def test_a_chunked_answer_is_decoded() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n'
    )
    async with serving(lambda n, head: chunked) as (server, url):
        lane = Lane(_connect)
        assert await (await _send(lane, url)).aread() == b'{"a":1}'
        assert await (await _send(lane, url)).aread() == b'{"a":1}'
        await lane.aclose()
    assert server.connections == 1


async def test_an_answer_until_close_and_connection_close_are_not_reused() -> None:
    def answer(n: int, head: bytes) -> bytes:
        if n == 1:
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
        return b"HTTP/1.0 200 OK\r\n\r\n{}"  # no length: the body ends with the connection

    async with serving(answer) as (server, url):
        server.close_after_answer = True
        lane = Lane(_connect)
        assert await (await _send(lane, url)).aread() == b"{}"
        assert await (await _send(lane, url)).aread() == b"{}"
        await lane.aclose()
    assert server.connections == 2


async def test_a_body_over_the_cap_is_read_one_byte_past_it_then_refused() -> None:
    """The lane reads at most cap + 1 bytes; the client's own check refuses the answer."""
    async with serving(lambda n, head: _json(b"x" * 5000)) as (_, url):
        lane = Lane(_connect)
        response = await _send(lane, url, cap=100)
        assert len(await response.aread()) == 101
        await lane.aclose()
    async with serving(lambda n, head: _json(b"x" * (17 << 20))) as (_, url):
        client = RestClient(RestSettings(url=url, api="0.10", path_prefix="", retries=0))
        try:
            with pytest.raises(InternalError, match="larger than 16 MiB"):
                await client.request("POST", f"{url}/v1/x", json={}, lane=True, what="x")
        finally:
            await client.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # then the connection ends
    ],
)
async def test_malformed_answers_are_protocol_errors(answer: bytes) -> None:
    async with serving(lambda n, head: answer) as (server, url):
        server.close_after_answer = True
        lane = Lane(_connect)
        with pytest.raises(httpx.RemoteProtocolError):
            await _send(lane, url)
        await lane.aclose()


async def test_a_connection_closed_while_idle_is_replaced() -> None:
    async with serving(lambda n, head: _json(b"{}")) as (server, url):
        server.close_after_answer = True  # no Connection: close, just gone
        lane = Lane(_connect)
        for _ in range(3):
            await (await _send(lane, url)).aread()
            await asyncio.sleep(0.05)  # the close reaches the client
        await lane.aclose()
    assert server.connections == 3


async def test_a_connection_idle_past_the_expiry_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Servers drop idle connections after a while; one idle longer than
    ``KEEPALIVE_EXPIRY`` is not reused, so no request races the server's close."""
    monkeypatch.setattr(http1, "KEEPALIVE_EXPIRY", 0.1)
    async with serving(lambda n, head: _json(b"{}")) as (server, url):
        lane = Lane(_connect)
        await (await _send(lane, url)).aread()
        await (await _send(lane, url)).aread()
        assert server.connections == 1
        await asyncio.sleep(0.2)
        await (await _send(lane, url)).aread()
        await lane.aclose()
    assert server.connections == 2


async def test_a_busy_lane_and_an_unsafe_head_decline() -> None:
    """None means: use the pool. While one request holds the lane, a second declines;
    a header with CR/LF is never written by hand."""
    release = asyncio.Event()

    async with serving(lambda n, head: _json(b"{}")) as (server, url):

        async def slow_connect(target: str) -> httpcore.AsyncNetworkStream:
            await release.wait()
            return await _connect(target)

        lane = Lane(slow_connect)
        first = asyncio.ensure_future(_send(lane, url))
        await asyncio.sleep(0.01)
        assert await lane.send("POST", f"{url}/x", {}, b"", 100) is None
        release.set()
        await (await first).aread()
        assert await lane.send("POST", f"{url}/x", {"X-B": "a\r\nInjected: 1"}, b"", 100) is None
        await lane.aclose()
    assert len(server.requests) == 1


def test_request_heads() -> None:
    head = request_head("GET", "http://h:1/v1/a%2Fb?x=1", {"Upgrade": "websocket"})
    assert head == b"GET /v1/a%2Fb?x=1 HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n\r\n"
    assert request_head("GET", "http://h:1", {}) == b"GET / HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert request_head("GET", "http://u:p@h/", {}) is None
    assert request_head("GET", "http://h/", {"A": "\x00"}) is None
    assert request_head("GET", "http://h/", {"A": "é"}) is None


def test_answer_heads_are_parsed_strictly() -> None:
    status, headers = parse_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept:  a= "
    )
    assert status == 101 and headers == {"upgrade": "websocket", "sec-websocket-accept": "a="}
    assert parse_head(b"HTTP/1.1 409\r\nContent-Length: 0")[0] == 409
    assert parse_head(b"HTTP/1.0 200 OK")[1] == {"connection": "close"}
    assert parse_head(b"HTTP/1.1 200 OK\r\nA: 1\r\nA: 2")[1] == {"a": "1, 2"}
    for head in (
        b"HTTP/2 101 x",
        b"HTTP/1.1 10x Nope",
        b"HTTP/1.1 1011 x",
        b"HTTP/1.1 101 x\r\nno colon here",
        b"HTTP/1.1 101 x\r\nName : space before the colon",
        b"HTTP/1.1 101 x\r\nA: b\r\n folded: continuation",
    ):
        assert parse_head(head) == (0, {}), head
