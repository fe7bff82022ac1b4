"""A box's DNS answers, as unit tests (a resolver the test controls; no traffic)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Sequence

import pytest

from boxlite_mcp.runtime.network.dns import (
    HOST_ALIAS_IN_BOX,
    MAX_TCP_CONNECTIONS,
    NXDOMAIN,
    DnsServer,
    build_answer,
    parse_question,
)
from boxlite_mcp.runtime.network.policy import AllowList, IPAddress, NetPolicy, Verdict

pytestmark = pytest.mark.anyio

ZONE = {"pypi.org": ["151.101.0.223", "2a04:4e42::223"], "sneaky.example": ["10.0.0.1"]}


async def resolve(name: str) -> Sequence[IPAddress]:
    if name not in ZONE:
        raise OSError("no such name")
    return [ipaddress.ip_address(a) for a in ZONE[name]]


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p)
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def records(reply: bytes) -> tuple[int, list[str]]:
    ident, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
    assert ident == 0x1234 and flags & 0x8000
    _, _, _, _, end = parse_question(reply[:12].replace(reply[2:4], b"\x01\x00") + reply[12:])
    out = []
    pos = end
    for _ in range(ancount):
        _, _, _, _, size = struct.unpack("!HHHIH", reply[pos : pos + 12])
        out.append(str(ipaddress.ip_address(reply[pos + 12 : pos + 12 + size])))
        pos += 12 + size
    return flags & 0xF, out


@pytest.fixture
def server() -> tuple[DnsServer, list[Verdict]]:
    denied: list[Verdict] = []
    policy = NetPolicy(AllowList.parse(["pypi.org", "sneaky.example", "host.boxlite.internal:8"]))
    return DnsServer(policy, denied.append, resolve=resolve), denied


async def test_allowed_name(server: tuple[DnsServer, list[Verdict]]) -> None:
    dns, denied = server
    assert records(await dns.answer(query("pypi.org"))) == (0, ["151.101.0.223"])
    assert records(await dns.answer(query("PyPI.org.", 28))) == (0, ["2a04:4e42::223"])
    assert records(await dns.answer(query("pypi.org", 15))) == (0, [])  # MX: no records
    assert denied == []


async def test_host_alias(server: tuple[DnsServer, list[Verdict]]) -> None:
    dns, _ = server
    assert records(await dns.answer(query("host.boxlite.internal"))) == (
        0,
        [str(HOST_ALIAS_IN_BOX)],
    )


async def test_refused_names_are_nxdomain_and_listed_once(
    server: tuple[DnsServer, list[Verdict]],
) -> None:
    dns, denied = server
    for qtype in (1, 28, 1):
        assert records(await dns.answer(query("example.com", qtype))) == (3, [])
    assert [d.destination for d in denied] == ["example.com (DNS)"]
    # A listed name resolving only to a private address: no answer either.
    assert records(await dns.answer(query("sneaky.example"))) == (3, [])
    assert "10.0.0.1" in denied[-1].reason


async def test_ip_literal_gets_an_empty_answer(server: tuple[DnsServer, list[Verdict]]) -> None:
    dns, _ = server
    assert records(await dns.answer(query("127.0.0.1"))) == (0, [])


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x12\x34",
        query("a")[:14],
        b"\x12\x34\x81\x00" + bytes(8),
        query("a")[:12] + b"\x40" + b"a" * 70 + b"\0\0\1\0\1",
    ],
)
async def test_malformed_queries_get_formerr(
    server: tuple[DnsServer, list[Verdict]], packet: bytes
) -> None:
    dns, _ = server
    reply = await dns.answer(packet)
    assert len(reply) == 12 and reply[3] & 0xF == 1


def test_build_answer_keeps_the_question() -> None:
    q = query("pypi.org")
    reply = build_answer(q, len(q), 0, 1, [ipaddress.IPv4Address("1.2.3.4")])
    assert reply[12 : len(q)] == q[12:]


async def _tcp_server(server: DnsServer) -> tuple[str, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    await server.serve_tcp(sock)
    address: tuple[str, int] = sock.getsockname()
    return address


async def _ask_tcp(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, packet: bytes
) -> bytes:
    writer.write(struct.pack("!H", len(packet)) + packet)
    await writer.drain()
    (length,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(length)


async def test_tcp_answers_several_queries_per_connection_per_policy(
    server: tuple[DnsServer, list[Verdict]],
) -> None:
    dns, denied = server
    host, port = await _tcp_server(dns)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        assert await _ask_tcp(writer, reader, query("pypi.org")) == await dns.answer(
            query("pypi.org")
        )
        assert records(await _ask_tcp(writer, reader, query("pypi.org")))[1] == ["151.101.0.223"]
        assert records(await _ask_tcp(writer, reader, query("evil.example")))[0] == NXDOMAIN
        assert [v.destination for v in denied] == ["evil.example (DNS)"]
        writer.close()
    finally:
        dns.close()


async def test_tcp_half_a_query_ends_the_connection_and_the_server_lives_on(
    server: tuple[DnsServer, list[Verdict]],
) -> None:
    dns, _ = server
    host, port = await _tcp_server(dns)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(struct.pack("!H", 100) + b"short")
        writer.write_eof()
        assert await reader.read() == b""  # closed, no reply
        reader, writer = await asyncio.open_connection(host, port)
        assert records(await _ask_tcp(writer, reader, query("pypi.org")))[0] == 0
        writer.close()
    finally:
        dns.close()


async def test_tcp_connections_are_capped(server: tuple[DnsServer, list[Verdict]]) -> None:
    dns, _ = server
    host, port = await _tcp_server(dns)
    try:
        held = [await asyncio.open_connection(host, port) for _ in range(MAX_TCP_CONNECTIONS)]
        for reader, writer in held[:1]:  # the first ones are served
            assert records(await _ask_tcp(writer, reader, query("pypi.org")))[0] == 0
        reader, writer = await asyncio.open_connection(host, port)
        try:  # one too many: closed at once (a reset when our bytes were unread)
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass
        for _, w in held:
            w.close()
    finally:
        dns.close()
