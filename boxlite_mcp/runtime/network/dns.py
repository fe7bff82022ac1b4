"""DNS for a box: questions answered on the host, per the box's policy.

The box's ``/etc/resolv.conf`` names ``127.0.0.1``, where this server listens
(UDP, in the box's namespace: see ``netns``). A name the policy allows is
resolved by the host's resolver and answered with the addresses the box may
reach; any other name gets NXDOMAIN (and is listed as a denial), so DNS is not
a channel to the outside either. ``host.boxlite.internal`` answers
``HOST_ALIAS_IN_BOX`` where listed: an address with no route in the box, since
only the proxy reaches the host (proxy-aware clients never resolve it).

The answers matter for programs that look a name up before using the proxy
(``getent``, some language runtimes); connections still go through the proxy,
which checks again. Only A and AAAA questions get records; others get an empty
answer. UDP, and TCP (two-byte length before each message, RFC 1035 4.2.2) for
resolvers that ask over TCP (``options use-vc``, musl after a truncated reply);
TCP connections are capped in number and idle time so a box cannot hold many.
Hand-written (about 80 lines) rather than a DNS library: one question in, a few
address records out. asyncio rather than anyio: UDP questions are answered from a
``DatagramProtocol`` on the socket made in the box's namespace, and the TCP side
serves asyncio streams like the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable

from .policy import HOST_ALIAS, NetPolicy, Resolver, Verdict, parse_target
from .proxy import system_resolve

HOST_ALIAS_IN_BOX = ipaddress.IPv4Address("198.18.0.1")
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
NXDOMAIN, FORMERR, NOTIMP = 3, 1, 4
TTL = 30
#: TCP: open connections per box, and how long one may sit without a whole query.
MAX_TCP_CONNECTIONS = 16
TCP_IDLE_SECONDS = 10.0


def parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of question) of a one-question query; ValueError else."""
    if len(packet) < 12:
        raise ValueError("short packet")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        raise ValueError("not a one-question query")
    labels: list[str] = []
    pos = 12
    while True:
        if pos >= len(packet):
            raise ValueError("truncated name")
        size = packet[pos]
        pos += 1
        if size == 0:
            break
        if size > 63 or pos + size > len(packet):
            raise ValueError("bad label")
        labels.append(packet[pos : pos + size].decode("ascii"))
        pos += size
    if pos + 4 > len(packet):
        raise ValueError("truncated question")
    qtype, _qclass = struct.unpack("!HH", packet[pos : pos + 4])
    return ident, flags, ".".join(labels).lower(), qtype, pos + 4


def build_answer(
    query: bytes,
    end: int,
    rcode: int,
    qtype: int,
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> bytes:
    ident, flags = struct.unpack("!HH", query[:4])
    records = (
        [a for a in addresses if (a.version == 4) == (qtype == TYPE_A)]
        if qtype in (TYPE_A, TYPE_AAAA)
        else []
    )
    out = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1, len(records), 0, 0)
    out += query[12:end]
    for a in records:
        out += struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, TTL, len(a.packed)) + a.packed
    return out


def error_answer(query: bytes, rcode: int) -> bytes:
    ident = query[:2] if len(query) >= 2 else b"\0\0"
    return ident + struct.pack("!HHHHH", 0x8180 | rcode, 0, 0, 0, 0)


class DnsServer:
    """Answers one box's DNS questions; ``close`` ends it."""

    def __init__(
        self,
        policy: NetPolicy,
        on_denied: Callable[[Verdict], None],
        resolve: Resolver = system_resolve,
    ) -> None:
        self.policy = policy
        self.on_denied = on_denied
        self.resolve = resolve
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        #: Open TCP connections: closed by ``close`` (their handlers then end on EOF).
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._denied_names: set[str] = set()

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                task = loop.create_task(server._answer(data, addr))
                server._tasks.add(task)
                task.add_done_callback(server._tasks.discard)

        transport, _ = await loop.create_datagram_endpoint(Protocol, sock=sock)
        self._transport = transport

    async def serve_tcp(self, sock: socket.socket) -> None:
        """Answer queries over TCP on the listening ``sock`` as well."""
        self._tcp = await asyncio.start_server(self._tcp_connection, sock=sock)

    async def _tcp_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(self._tcp_writers) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._tcp_writers.add(writer)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_SECONDS):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                reply = await self.answer(data)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass  # the box closed, sent half a query or sat idle: the connection ends
        finally:
            self._tcp_writers.discard(writer)
            writer.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for writer in list(self._tcp_writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()

    async def answer(self, data: bytes) -> bytes:
        """The reply to one query packet."""
        try:
            _, _, name, qtype, end = parse_question(data)
        except (ValueError, UnicodeDecodeError):
            return error_answer(data, FORMERR)
        target = parse_target(name)
        if target is not None and target.kind == "host":
            verdict = await self.policy.lookup(name, self.resolve)
            addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = (
                [HOST_ALIAS_IN_BOX] if verdict.allowed else []
            )
        elif target is not None and target.kind == "ip":
            return build_answer(data, end, 0, qtype, [])
        else:
            verdict = await self.policy.lookup(name, self.resolve)
            addresses = list(verdict.addresses)
        if not verdict.allowed:
            if name not in self._denied_names:  # A and AAAA: one denial, not two
                self._denied_names.add(name)
                self.on_denied(Verdict(False, f"{name or '.'} (DNS)", reason=verdict.reason))
            return build_answer(data, end, NXDOMAIN, qtype, [])
        return build_answer(data, end, 0, qtype, addresses)

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.answer(data)
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(reply, addr)


__all__ = ["HOST_ALIAS", "HOST_ALIAS_IN_BOX", "DnsServer"]
