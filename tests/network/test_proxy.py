"""The egress proxy on its own: real sockets on 127.0.0.1, no box in the way.

The proxy listens on an ordinary loopback socket here (in a box it is a socket
in the box's namespace); the "internet" is a server this test starts on
127.0.0.1, opened to the proxy as ``host.boxlite.internal:PORT``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from boxlite_mcp.runtime.network.policy import AllowList, IPAddress, NetPolicy, Verdict
from boxlite_mcp.runtime.network.proxy import EgressProxy

pytestmark = pytest.mark.anyio


async def no_dns(name: str) -> Sequence[IPAddress]:
    raise OSError(f"{name}: this test resolves nothing")


@dataclass
class Upstream:
    port: int
    heads: list[bytes] = field(default_factory=list)


@dataclass
class Setup:
    proxy: EgressProxy
    port: int
    upstream: Upstream
    closed_port: int
    denied: list[Verdict]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    upstream = Upstream(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            upstream.heads.append(head)
            body = b"hello " + head.split(b" ")[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    denied: list[Verdict] = []
    policy = NetPolicy(
        AllowList.parse(
            [f"host.boxlite.internal:{upstream.port}", f"host.boxlite.internal:{closed_port}"]
        )
    )
    proxy = EgressProxy(policy, denied.append, resolve=no_dns)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    await proxy.serve(listener)
    yield Setup(proxy, port, upstream, closed_port, denied)
    proxy.close()
    server.close()


async def exchange(port: int, data: bytes, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            return await reader.read(-1) if read_until_close else await reader.read(65536)
    finally:
        writer.close()


async def test_connect_tunnel_to_a_listed_port(setup: Setup) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    target = f"host.boxlite.internal:{setup.upstream.port}"
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        reply = await reader.read(-1)
    writer.close()
    assert reply.endswith(b"hello /tunnel")
    assert setup.proxy.counters.tcp_connections == 1
    assert setup.proxy.counters.bytes_sent > 0 and setup.proxy.counters.bytes_received > 0
    assert setup.denied == []


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:{up}",
        "localhost:{up}",
        "[::1]:{up}",
        "host.boxlite.internal:1",
        "2130706433:{up}",
        "169.254.169.254:80",
    ],
)
async def test_connect_refused_with_403_naming_it(setup: Setup, target: str) -> None:
    target = target.format(up=setup.upstream.port)
    reply = await exchange(setup.port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"X-Boxlite-Policy: denied" in head
    assert target.encode() in body and b"--net-allow" in body
    assert [v.destination for v in setup.denied] == [target]
    assert setup.upstream.heads == []


async def test_plain_http_is_forwarded_in_origin_form(setup: Setup) -> None:
    up = setup.upstream.port
    reply = await exchange(
        setup.port,
        (
            f"GET http://host.boxlite.internal:{up}/path?q=1 HTTP/1.1\r\n"
            f"Host: host.boxlite.internal:{up}\r\nProxy-Connection: keep-alive\r\n"
            "Proxy-Authorization: Basic eA==\r\nX-Keep: yes\r\n\r\n"
        ).encode(),
    )
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"hello /path?q=1")
    (head,) = setup.upstream.heads
    assert head.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert b"X-Keep: yes" in head and b"Connection: close" in head
    assert b"Proxy-" not in head


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (b"GET https://example.com/ HTTP/1.1\r\n\r\n", b"CONNECT"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"egress proxy"),
        (b"garbage\r\n\r\n", b"not an HTTP request line"),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"host:port"),
        (b"CONNECT [::1 HTTP/1.1\r\n\r\n", b"host:port"),
        (b"GET http:///x HTTP/1.1\r\n\r\n", b"no valid host"),
    ],
)
async def test_bad_requests_get_400(setup: Setup, request_: bytes, says: bytes) -> None:
    reply = await exchange(setup.port, request_)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request") and says in reply


async def test_allowed_but_down_is_502_not_403(setup: Setup) -> None:
    reply = await exchange(
        setup.port, f"CONNECT host.boxlite.internal:{setup.closed_port} HTTP/1.1\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert b"allowed but did not answer" in reply
    assert setup.proxy.counters.tcp_errors == 1 and setup.denied == []


async def test_oversized_head_is_dropped(setup: Setup) -> None:
    reply = await exchange(setup.port, b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * 70000)
    assert reply == b""


def _socks_request(host: str, port: int, cmd: int = 1) -> bytes:
    name = host.encode()
    return b"\x05\x01\x00" + bytes([5, cmd, 0, 3, len(name)]) + name + struct.pack("!H", port)


async def test_socks5(setup: Setup) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(_socks_request("host.boxlite.internal", setup.upstream.port))
    assert await reader.readexactly(2) == b"\x05\x00"
    assert (await reader.readexactly(10))[:2] == b"\x05\x00"
    writer.write(b"GET /socks HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(10):
        assert (await reader.read(-1)).endswith(b"hello /socks")
    writer.close()


@pytest.mark.parametrize(
    ("host", "cmd", "code"), [("127.0.0.1", 1, 2), ("host.boxlite.internal", 2, 7)]
)
async def test_socks5_refusals(setup: Setup, host: str, cmd: int, code: int) -> None:
    reply = await exchange(setup.port, _socks_request(host, setup.upstream.port, cmd))
    assert reply[:2] == b"\x05\x00" and reply[2:4] == bytes([5, code])


async def test_socks5_without_no_auth_method(setup: Setup) -> None:
    assert await exchange(setup.port, b"\x05\x01\x02") == b"\x05\xff"


async def test_close_ends_open_tunnels(setup: Setup) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(f"CONNECT host.boxlite.internal:{setup.upstream.port} HTTP/1.1\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    setup.proxy.close()
    async with asyncio.timeout(10):
        assert await reader.read(-1) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", setup.port)


async def test_too_many_connections_are_closed_at_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setup.proxy.listener, "max_connections", 2)
    held = [await asyncio.open_connection("127.0.0.1", setup.port) for _ in range(2)]
    await asyncio.sleep(0.05)  # both accepted and waiting for a request
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    async with asyncio.timeout(10):
        assert await reader.read(-1) == b""
    writer.close()
    assert setup.proxy.counters.tcp_errors == 1
    for _, w in held:
        w.close()
