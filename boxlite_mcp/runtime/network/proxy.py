"""The egress proxy: a box's only way out, with its policy on the host side.

A box with network has a network namespace holding nothing but loopback. On its
``127.0.0.1:PROXY_PORT`` this process listens (see ``netns``) and speaks:

- HTTP ``CONNECT host:port`` (what HTTPS through ``HTTPS_PROXY`` uses; any TCP
  protocol can ride on it),
- plain HTTP with an absolute URL (``HTTP_PROXY``), one request per connection,
- SOCKS5 ``CONNECT`` (``ALL_PROXY=socks5h://...``), told apart by its first byte.

Every destination is judged by the box's ``NetPolicy`` here, outside the box,
and the connection goes to the *address the policy checked* (the name is
resolved once, on the host, so DNS rebinding cannot slip a second answer in).
A refusal is immediate: HTTP gets ``403`` with a body naming the destination,
the reason and the policy; SOCKS gets "not allowed by ruleset". Each refusal is
reported to ``on_denied`` (``box_info`` lists the recent ones).

Secrets (``secrets``): every HTTP request is rewritten as one request per
connection (``Connection: close``), with the box's placeholders swapped for the
values where the destination is the secret's host, in the request line, the
headers and a body of known length (up to ``BODY_LIMIT``; chunked bodies pass
unchanged); a placeholder bound for any other host is refused with 403 before
anything is sent. HTTPS to a secret's host is terminated here (``tls``) so the
request can be read; HTTPS elsewhere, and SOCKS, stay end-to-end tunnels.

Hand-written on asyncio streams rather than taken from a proxy library: the
policy check must sit between parsing and connecting, the listening socket
comes from another network namespace, and the protocol subset is small.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .pipe import CHUNK, pipe
from .policy import IPAddress, NetPolicy, Resolver, Verdict
from .secrets import SecretError, Substitution
from .tls import BoxCA

log = logging.getLogger(__name__)

PROXY_PORT = 3128
#: Open connections one box may hold through its proxy; more are closed at once.
MAX_CONNECTIONS = 1024
BODY_LIMIT = 16 * 1024 * 1024  # bodies up to this size get secrets swapped in
_HOP_HEADERS = (b"proxy-connection:", b"proxy-authorization:", b"connection:", b"keep-alive:")
Refuse = Callable[[Verdict], Awaitable[None]]
Fail = Callable[[str], Awaitable[None]]
HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT = 10.0


async def system_resolve(name: str) -> Sequence[IPAddress]:
    """The host's resolver (getaddrinfo on the host, in the host's namespace)."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%")[0]), None)
    return list(seen)


@dataclass(frozen=True)
class Interception:
    """What terminating TLS for secret hosts takes: the box's CA, the upstream check."""

    ca: BoxCA
    upstream: ssl.SSLContext


@dataclass
class Counters:
    """What ``box_metrics`` reports for a box's network (BoxLite's field names)."""

    bytes_sent: int = 0  # box -> outside
    bytes_received: int = 0  # outside -> box
    tcp_connections: int = 0
    tcp_errors: int = 0


class EgressProxy:
    """Serves one box's proxy port; ``close`` ends it and every connection."""

    def __init__(
        self,
        policy: NetPolicy,
        on_denied: Callable[[Verdict], None],
        resolve: Resolver = system_resolve,
        host_port_refused: Callable[[int], str | None] = lambda port: None,
        substitution: Substitution | None = None,
        tls: Interception | None = None,
    ) -> None:
        self.policy = policy
        #: The box's secrets (empty: nothing to swap, no request is rewritten for them).
        self.substitution = substitution or Substitution({})
        #: TLS termination for the hosts of the box's secrets (None: HTTPS is tunnelled).
        self.tls = tls
        #: Why a port on the host's loopback stays closed even where the policy lists it
        #: (another box's exposed service, the server's own port); None: it does not.
        self.host_port_refused = host_port_refused
        self.on_denied = on_denied
        self.resolve = resolve
        self.counters = Counters()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=HEAD_LIMIT)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._tasks) > MAX_CONNECTIONS:
                self.counters.tcp_errors += 1
                return  # closed at once: the box holds too many open already
            first = await reader.read(1)
            if first == b"\x05":
                await self._socks(reader, writer)
            elif first:
                await self._http(first, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except Exception as exc:  # one connection's bug must not reach the event loop
            log.warning("a box proxy connection failed: %s", type(exc).__name__)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- HTTP -----------------------------------------------------------------

    async def _http(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = first + await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        parts = line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _reply(writer, 400, "not an HTTP request line")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, port = _authority(target, None)
            if host is None or port is None:
                await _reply(writer, 400, f"CONNECT target {target!r} is not host:port")
                return
            upstream = await self._open(host, port, *self._http_errors(writer))
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self.tls is not None and self.substitution.wanted_by(host):
                await self._intercept(host, reader, writer, *upstream)
                return
            await self._pipe(reader, writer, *upstream)
            return
        if not target.lower().startswith("http://"):
            hint = (
                "https:// URLs go through CONNECT (set HTTPS_PROXY)"
                if target.lower().startswith("https://")
                else "this is the box's egress proxy; send absolute http:// URLs"
            )
            await _reply(writer, 400, f"cannot proxy {target!r}: {hint}")
            return
        authority, _, path = target[7:].partition("/")
        host, port = _authority(authority, 80)
        if host is None or port is None:
            await _reply(writer, 400, f"URL {target!r} has no valid host")
            return
        request = await self._request(f"{method} /{path} {version}", rest, reader, writer, host)
        if request is None:
            return
        upstream = await self._open(host, port, *self._http_errors(writer))
        if upstream is None:
            return
        up_reader, up_writer = upstream
        up_writer.write(request)
        self.counters.bytes_sent += len(request)
        await self._pipe(reader, writer, up_reader, up_writer)

    async def _request(
        self,
        line: str,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
    ) -> bytes | None:
        """The request to send upstream (one per connection), secrets swapped in.

        None after answering the box with 403 (a placeholder bound for a host its
        secret is not for: nothing is sent) or 400.
        """
        headers = [
            h for h in rest[:-4].split(b"\r\n") if h and not h.lower().startswith(_HOP_HEADERS)
        ]
        body = b""
        if self.substitution:
            length = _content_length(headers)
            if length is not None and length <= BODY_LIMIT:
                body = await reader.readexactly(length)
        request = (
            line.encode("latin-1")
            + b"\r\n"
            + b"".join(h + b"\r\n" for h in headers)
            + b"Connection: close\r\n\r\n"
        )
        if not self.substitution:
            return request
        try:
            request = self.substitution.apply(request, host)
            if body:
                new_body = self.substitution.apply(body, host)
                if new_body != body:
                    request = _set_content_length(request, len(new_body))
                body = new_body
        except SecretError as exc:
            self.on_denied(Verdict(False, host, reason=str(exc)))
            await _reply(writer, 403, f"boxlite-mcp: {exc}")
            return None
        return request + body

    async def _intercept(
        self,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """HTTPS to a host the box's secrets are for: read the request, swap, re-encrypt."""
        assert self.tls is not None
        try:
            await writer.drain()
            await writer.start_tls(self.tls.ca.server_context(host))
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            request = await self._request(line.decode("latin-1"), rest, reader, writer, host)
            if request is None:
                return
            try:
                await up_writer.start_tls(self.tls.upstream, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                await _reply(
                    writer,
                    502,
                    f"boxlite-mcp: TLS with {host} failed: {exc}; the "
                    "server checks it against the host's trust store "
                    "and --net-ca-file",
                )
                return
            up_writer.write(request)
            self.counters.bytes_sent += len(request)
            await self._pipe(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    def _http_errors(self, writer: asyncio.StreamWriter) -> tuple[Refuse, Fail]:
        async def refuse(verdict: Verdict) -> None:
            await _reply(writer, 403, _denied(verdict, self.policy))

        async def fail(message: str) -> None:
            await _reply(writer, 502, message)

        return refuse, fail

    # -- SOCKS5 ---------------------------------------------------------------

    async def _socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = (await reader.readexactly(1))[0]
        methods = await reader.readexactly(count)
        if 0 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x00")
        ver, cmd, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode(
                "ascii", errors="replace"
            )
        else:
            writer.write(b"\x05\x08\x00\x01" + bytes(6))
            return
        port = int.from_bytes(await reader.readexactly(2), "big")
        if ver != 5 or cmd != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))  # only CONNECT
            return

        async def refuse(_: Verdict) -> None:
            writer.write(b"\x05\x02\x00\x01" + bytes(6))

        async def fail(_: str) -> None:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))

        upstream = await self._open(host, port, refuse, fail)
        if upstream is None:
            return
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await self._pipe(reader, writer, *upstream)

    # -- shared ---------------------------------------------------------------

    async def _open(
        self, host: str, port: int, refuse: Refuse, fail: Fail
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        verdict = await self.policy.decide(host, port, self.resolve)
        if verdict.allowed and any(a.is_loopback for a in verdict.addresses):
            why = self.host_port_refused(port)
            if why is not None:
                verdict = Verdict(False, verdict.destination, reason=why)
        if not verdict.allowed:
            self.on_denied(verdict)
            await refuse(verdict)
            return None
        errors: list[str] = []
        for address in verdict.addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    pair = await asyncio.open_connection(str(address), port, limit=CHUNK)
            except (OSError, TimeoutError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "timed out"
                errors.append(f"{address}: {why}")
                continue
            self.counters.tcp_connections += 1
            return pair
        self.counters.tcp_errors += 1
        await fail(f"{verdict.destination} is allowed but did not answer ({'; '.join(errors)})")
        return None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        c = self.counters

        def sent(n: int) -> None:
            c.bytes_sent += n

        def received(n: int) -> None:
            c.bytes_received += n

        await pipe(reader, writer, up_reader, up_writer, sent, received)


def _content_length(headers: list[bytes]) -> int | None:
    for h in headers:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def _set_content_length(request: bytes, length: int) -> bytes:
    head, _, _ = request.partition(b"\r\n\r\n")
    lines = [
        f"Content-Length: {length}".encode() if h.lower().startswith(b"content-length:") else h
        for h in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _authority(text: str, default_port: int | None) -> tuple[str | None, int | None]:
    """(host, port) of ``host:port`` / ``[v6]:port`` / ``host`` (then ``default_port``)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None, None
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        return None, None
    else:
        host, port_text = text, ""
    if port_text is None:
        return None, None
    if not port_text:
        return (host or None), default_port
    if not port_text.isdigit() or len(port_text) > 5:
        return None, None
    return (host or None), int(port_text)


def _denied(verdict: Verdict, policy: NetPolicy) -> str:
    return (
        f"boxlite-mcp: connection to {verdict.destination} blocked by this box's network "
        f"policy: {verdict.reason}. {policy.describe()}. The server's operator sets the "
        "widest list (--net-allow); a box narrows it with allow_net."
    )


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (message + "\n").encode()
    marker = "X-Boxlite-Policy: denied\r\n" if status == 403 else ""
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{marker}Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()
