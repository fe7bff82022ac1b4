"""Secrets where a request is not one buffer: chunked bodies and SOCKS streams.

The proxy listens on an ordinary loopback socket (no box in the way); the
"internet" is a recording server on 127.0.0.1 that decodes what it receives,
opened to the proxy as ``host.boxlite.internal:PORT``. The secret's value is
random per run, so finding it in a log or an answer means it leaked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boxlite_mcp.runtime.network.policy import AllowList, IPAddress, NetPolicy, Verdict
from boxlite_mcp.runtime.network.proxy import EgressProxy, Interception
from boxlite_mcp.runtime.network.secrets import Secret, SecretError, Substitution
from boxlite_mcp.runtime.network.tls import BoxCA, upstream_context

from ..bwrap.test_secrets import _test_ca, read_body

pytestmark = pytest.mark.anyio

VALUE = "v4lue-" + secrets.token_hex(12)
PLACEHOLDER = b"<BOXLITE_SECRET:API_TOKEN>"
SECRET = Secret("API_TOKEN", ("host.boxlite.internal",), VALUE)


async def no_dns(name: str) -> Sequence[IPAddress]:
    raise OSError(f"{name}: this test resolves nothing")


# -- the streaming rewriter on its own ---------------------------------------------------

BODY_PIECES = st.lists(
    st.sampled_from([b"a", b"<", b">", b"x=", PLACEHOLDER, b"<BOXLITE_SECRET:OTHER>", b"\r\n"]),
    max_size=12,
).map(b"".join)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(body=BODY_PIECES, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_streamed_equals_whole_at_every_split(body: bytes, cuts: list[int]) -> None:
    """Wherever the chunks break (inside a placeholder too), the output is ``apply``'s."""
    substitution = Substitution({"API_TOKEN": SECRET})
    stream = substitution.stream("host.boxlite.internal")
    out = b"".join(stream.feed(piece) for piece in _split(body, cuts)) + stream.finish()
    assert out == substitution.apply(body, "host.boxlite.internal")


@given(prefix=st.binary(max_size=50), cuts=st.lists(st.integers(0, 120), max_size=6))
def test_streamed_refusal_at_every_split(prefix: bytes, cuts: list[int]) -> None:
    """A placeholder for another host is refused whichever chunks it spans, and
    nothing from the placeholder on is ever handed out."""
    before = prefix.replace(b"<", b"")
    body = before + PLACEHOLDER + b"tail"
    stream = Substitution({"API_TOKEN": SECRET}).stream("elsewhere.example")
    handed: list[bytes] = []
    with pytest.raises(SecretError) as caught:
        for piece in _split(body, cuts):
            handed.append(stream.feed(piece))
        handed.append(stream.finish())
    assert VALUE not in str(caught.value)
    assert before.startswith(b"".join(handed))


def test_an_unfinished_lookalike_is_released_once_too_long() -> None:
    """A ``<`` that cannot start a placeholder any more is not held for ever."""
    stream = Substitution({"API_TOKEN": SECRET}).stream("host.boxlite.internal")
    assert stream.feed(b"<" + b"a" * 300) == b"<" + b"a" * 300


# -- through the proxy -------------------------------------------------------------------


@dataclass
class Recorder:
    """A loopback HTTP(S) server keeping each request's head and decoded body."""

    port: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    partial: list[bytes] = field(default_factory=list)


async def _recorder(context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, Recorder]:
    recorder = Recorder()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, received = b"", bytearray()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            recorder.requests.append((head, await read_body(reader, head, received)))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nreceived")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            recorder.partial.append(head + received)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    recorder.port = server.sockets[0].getsockname()[1]
    return server, recorder


async def _start_proxy(
    allow: list[str], denied: list[Verdict], tls: Interception | None = None
) -> tuple[EgressProxy, int]:
    """A proxy for a box holding API_TOKEN, on a loopback port (returned)."""
    proxy = EgressProxy(
        NetPolicy(AllowList.parse(allow)),
        denied.append,
        resolve=no_dns,
        substitution=Substitution({"API_TOKEN": SECRET}),
        tls=tls,
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    await proxy.serve(listener)
    return proxy, listener.getsockname()[1]


@dataclass
class World:
    port: int  # the proxy
    http: Recorder
    https: Recorder
    ca: BoxCA
    denied: list[Verdict]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    ca_file, upstream_tls = _test_ca(tmp_path)
    servers = [await _recorder(), await _recorder(upstream_tls)]
    (_, http), (_, https) = servers
    denied: list[Verdict] = []
    ca = BoxCA("test", tmp_path)
    proxy, port = await _start_proxy(
        [f"host.boxlite.internal:{http.port}", f"host.boxlite.internal:{https.port}"],
        denied,
        Interception(ca, upstream_context(str(ca_file))),
    )
    try:
        yield World(port, http, https, ca, denied)
    finally:
        proxy.close()
        for server, _ in servers:
            server.close()


def _chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


async def _proxied(world: World, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(request)
        async with asyncio.timeout(10):
            return await reader.read(-1)
    finally:
        writer.close()


async def test_chunked_body_gets_the_value_across_chunk_boundaries(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pieces = [b"token=<BOXLITE_SEC", b"RET:API_TO", b"KEN>&again=", PLACEHOLDER, b"&end=1"]
    url = f"http://host.boxlite.internal:{world.http.port}/up"
    answer = await _proxied(
        world,
        f"POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + _chunked(pieces),
    )
    assert answer.endswith(b"received"), answer
    ((head, body),) = world.http.requests
    assert body == f"token={VALUE}&again={VALUE}&end=1".encode()
    assert b"BOXLITE_SECRET" not in head + body
    assert VALUE not in caplog.text and VALUE.encode() not in answer


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODY_PIECES, cuts=st.lists(st.integers(0, 400), max_size=8))
async def test_chunked_through_the_proxy_at_every_split(
    world: World, body: bytes, cuts: list[int]
) -> None:
    """Whatever chunks the box cuts its body into, the host receives ``apply`` of it."""
    world.http.requests.clear()
    url = f"http://host.boxlite.internal:{world.http.port}/split"
    answer = await _proxied(
        world,
        f"POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + _chunked(_split(body, cuts)),
    )
    assert answer.endswith(b"received"), answer
    ((_, got),) = world.http.requests
    assert got == Substitution({"API_TOKEN": SECRET}).apply(body, "host.boxlite.internal")


async def test_chunked_refusal_mid_body(tmp_path: Path) -> None:
    server, recorder = await _recorder()
    denied: list[Verdict] = []
    proxy, port = await _start_proxy([f"127.0.0.1:{recorder.port}"], denied)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST http://127.0.0.1:{recorder.port}/x HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + b"6\r\nbefore\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # the first chunk is on its way upstream
        writer.write(_chunked([b"key=<BOXLITE_", b"SECRET:API_TOKEN>"]))
        async with asyncio.timeout(10):
            answer = await reader.read(-1)
        writer.close()
        await asyncio.sleep(0.1)  # the upstream notices its request was cut off
    finally:
        proxy.close()
        server.close()
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"secret API_TOKEN" in answer and b"was not sent" in answer
    assert VALUE.encode() not in answer
    assert recorder.requests == []  # never a complete request
    assert b"BOXLITE" not in recorder.partial[0] and b"before" in recorder.partial[0]
    assert denied and "API_TOKEN" in denied[-1].reason


async def test_content_length_is_corrected(world: World) -> None:
    body = b"a=" + PLACEHOLDER
    url = f"http://host.boxlite.internal:{world.http.port}/cl"
    answer = await _proxied(
        world,
        f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
    )
    assert answer.endswith(b"received")
    ((head, got),) = world.http.requests
    assert got == f"a={VALUE}".encode()
    assert f"Content-Length: {len(got)}".encode() in head


# -- SOCKS -------------------------------------------------------------------------------


async def _socks(world: World, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    name = b"host.boxlite.internal"
    writer.write(b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name)
    writer.write(port.to_bytes(2, "big"))
    assert await reader.readexactly(2) == b"\x05\x00"
    assert (await reader.readexactly(10))[:2] == b"\x05\x00"
    return reader, writer


async def test_socks_http_gets_the_value(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await _socks(world, world.http.port)
    writer.write(b"GET /s?k=" + PLACEHOLDER + b" HTTP/1.1\r\nX-Key: " + PLACEHOLDER + b"\r\n\r\n")
    async with asyncio.timeout(10):
        answer = await reader.read(-1)
    writer.close()
    assert answer.endswith(b"received")
    ((head, _),) = world.http.requests
    assert head.startswith(f"GET /s?k={VALUE} HTTP/1.1".encode())
    assert f"X-Key: {VALUE}".encode() in head and b"BOXLITE" not in head
    assert VALUE not in caplog.text


async def test_socks_https_to_a_secret_host_is_terminated_and_swapped(world: World) -> None:
    reader, writer = await _socks(world, world.https.port)
    client = ssl.create_default_context(cadata=world.ca.pem().decode())
    await writer.start_tls(client, server_hostname="host.boxlite.internal")
    writer.write(b"GET /tls HTTP/1.1\r\nAuthorization: Bearer " + PLACEHOLDER + b"\r\n\r\n")
    async with asyncio.timeout(10):
        answer = await reader.read(-1)
    writer.close()
    assert answer.endswith(b"received"), answer
    ((head, _),) = world.https.requests
    assert f"Authorization: Bearer {VALUE}".encode() in head


async def test_socks_placeholder_to_another_host_is_refused(tmp_path: Path) -> None:
    server, recorder = await _recorder()
    denied: list[Verdict] = []
    proxy, port = await _start_proxy([f"127.0.0.1:{recorder.port}"], denied)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x05\x01\x00\x05\x01\x00\x01" + bytes([127, 0, 0, 1]))
        writer.write(recorder.port.to_bytes(2, "big"))
        await reader.readexactly(12)
        writer.write(b"GET / HTTP/1.1\r\nX-Key: " + PLACEHOLDER + b"\r\n\r\n")
        async with asyncio.timeout(10):
            answer = await reader.read(-1)
        writer.close()
        await asyncio.sleep(0.05)
    finally:
        proxy.close()
        server.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"was not sent" in answer
    assert recorder.requests == [] and all(b"BOXLITE" not in p for p in recorder.partial)
    assert VALUE.encode() not in answer


async def test_socks_other_protocols_stay_a_tunnel(world: World) -> None:
    """Bytes that are neither HTTP nor TLS pass unchanged (placeholders too: only text)."""
    reader, writer = await _socks(world, world.http.port)
    writer.write(b"\x00raw " + PLACEHOLDER + b"\r\n\r\n")
    async with asyncio.timeout(10):
        await reader.read(-1)
    writer.close()
    await asyncio.sleep(0.05)
    assert world.http.requests == [] or PLACEHOLDER in world.http.requests[0][0]


async def test_expect_continue_is_answered_before_the_body_is_read(world: World) -> None:
    """A client that waits for ``100 Continue`` before its body (curl does for big
    ones) gets it from the proxy, which must read the body to swap the value in."""
    body = b"a=" + PLACEHOLDER
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    writer.write(
        f"POST http://host.boxlite.internal:{world.http.port}/e HTTP/1.1\r\nHost: x\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    async with asyncio.timeout(10):
        answer = await reader.read(-1)
    writer.close()
    assert answer.endswith(b"received")
    ((head, got),) = world.http.requests
    assert got == f"a={VALUE}".encode() and b"expect:" not in head.lower()


async def test_socks_to_a_server_that_speaks_first_is_a_tunnel(tmp_path: Path) -> None:
    """An SSH or SMTP server greets before the client sends: the proxy must not wait
    for a request that never comes first."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-test\r\n")
        await writer.drain()
        writer.write(b"echo:" + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    server_port = server.sockets[0].getsockname()[1]
    proxy, port = await _start_proxy([f"127.0.0.1:{server_port}"], [])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x05\x01\x00\x05\x01\x00\x01" + bytes([127, 0, 0, 1]))
        writer.write(server_port.to_bytes(2, "big"))
        await reader.readexactly(12)
        async with asyncio.timeout(5):
            assert await reader.readline() == b"SSH-2.0-test\r\n"
        writer.write(b"SSH-2.0-client\r\n")
        async with asyncio.timeout(5):
            assert await reader.read(-1) == b"echo:SSH-2.0-client\r\n"
        writer.close()
    finally:
        proxy.close()
        server.close()
