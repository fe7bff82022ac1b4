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
headers and the body: one of known length (up to ``BODY_LIMIT``, its
Content-Length corrected) or a chunked one, piece by piece as it streams
(re-framed; a placeholder split across chunks is still found). A placeholder
bound for any other host is refused with 403 before it is sent. HTTPS to a
secret's host is terminated here (``tls``) so the request can be read; HTTPS
elsewhere stays an end-to-end tunnel. A SOCKS stream gets the same: its first
byte tells HTTP (rewritten) from TLS (terminated for a secret's host) from
anything else (tunnelled).

Hand-written on asyncio streams rather than taken from a proxy library: the
policy check must sit between parsing and connecting, the listening socket
comes from another network namespace, and the protocol subset is small.
asyncio's streams rather than anyio's: ``start_server(sock=...)`` serves the
socket made in the box's namespace and the parsers read with ``readuntil`` /
``readexactly`` under the stream's line limit; the server runs on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from .pipe import CHUNK, Listener, copy, pipe
from .policy import IPAddress, NetPolicy, Resolver, Verdict
from .secrets import SecretError, Substitution
from .tls import BoxCA

PROXY_PORT = 3128
#: Open connections one box may hold through its proxy; more are closed at once.
MAX_CONNECTIONS = 1024
BODY_LIMIT = 16 * 1024 * 1024  # bodies up to this size get secrets swapped in
_HOP_HEADERS = (b"proxy-connection:", b"proxy-authorization:", b"connection:", b"keep-alive:")
Refuse = Callable[[Verdict], Awaitable[None]]
Fail = Callable[[str], Awaitable[None]]
HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT = 10.0
_TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS ClientHello record
Upstream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


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
        self.listener = Listener(
            self._handle, "box proxy", MAX_CONNECTIONS, on_refused=self._refused
        )

    def _refused(self) -> None:
        self.counters.tcp_errors += 1

    async def serve(self, sock: socket.socket) -> None:
        await self.listener.serve(sock=sock, limit=HEAD_LIMIT)

    def close(self) -> None:
        self.listener.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first == b"\x05":
            await self._socks(reader, writer)
        elif first:
            await self._http(first, reader, writer)

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
                await writer.drain()
                await writer.start_tls(self.tls.ca.server_context(host))
                await self._exchange_tls(host, reader, writer, *upstream)
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
        refuse, fail = self._http_errors(writer)

        async def connect() -> Upstream | None:
            assert port is not None
            return await self._open(host, port, refuse, fail)

        origin_form = f"{method} /{path} {version}".encode("latin-1")
        await self._exchange(origin_form, rest, reader, writer, host, connect)

    async def _exchange(
        self,
        line: bytes,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        connect: Callable[[], Awaitable[Upstream | None]],
    ) -> None:
        """One HTTP request from the box to ``host`` (one per connection), secrets swapped
        in, and its answer back.

        The request line and headers are rewritten before anything is sent; a body of
        known length (up to ``BODY_LIMIT``) likewise; a chunked body piece by piece as
        it streams, re-framed. A placeholder bound for a host its secret is not for
        answers the box 403: nothing is sent, or (in a chunked body) the request is cut
        off before the placeholder and never completed.
        """
        headers = [
            h for h in rest[:-4].split(b"\r\n") if h and not h.lower().startswith(_HOP_HEADERS)
        ]
        swap = bool(self.substitution)
        chunked = swap and _is_chunked(headers)
        length = _content_length(headers)
        body = b""
        if swap and not chunked and length is not None and length <= BODY_LIMIT:
            if _expects_continue(headers):  # the body is read here, before the upstream
                headers = [h for h in headers if not h.lower().startswith(b"expect:")]
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length)
        head = line + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
        head += b"Connection: close\r\n\r\n"
        try:
            head = self.substitution.apply(head, host)
            if body:
                new_body = self.substitution.apply(body, host)
                if new_body != body:
                    head = _set_content_length(head, len(new_body))
                body = new_body
        except SecretError as exc:
            await self._refuse_secret(writer, host, exc)
            return
        upstream = await connect()
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            up_writer.write(head + body)
            self.counters.bytes_sent += len(head) + len(body)
            whole = swap and (chunked or length is None or length <= BODY_LIMIT)
            if not whole:  # no secrets, or a body too big to hold: passed on as it comes
                await self._pipe(reader, writer, up_reader, up_writer)
                return
            # The whole request is read: only the answer flows from here on (bytes the
            # box sends after it are not another request to pass on unread).
            answer = asyncio.ensure_future(copy(up_reader, writer, self._received))
            try:
                if chunked:
                    await self._chunked_body(reader, up_writer, host)
                await answer
            except SecretError as exc:
                answer.cancel()
                up_writer.transport.abort()  # the upstream never sees a complete request
                await self._refuse_secret(writer, host, exc)
            finally:
                answer.cancel()
        finally:
            up_writer.close()

    async def _chunked_body(
        self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, host: str
    ) -> None:
        """Pass a chunked body on, placeholders swapped (also where one spans chunks)."""
        stream = self.substitution.stream(host)

        async def send(data: bytes) -> None:
            if data:
                framed = b"%x\r\n" % len(data) + data + b"\r\n"
                up_writer.write(framed)
                self.counters.bytes_sent += len(framed)
                await up_writer.drain()

        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)  # ValueError: not chunked
            if size == 0:
                break
            while size:
                piece = await reader.readexactly(min(size, CHUNK))
                size -= len(piece)
                await send(stream.feed(piece))
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
        await send(stream.finish())
        trailers = b""
        while (field := await reader.readuntil(b"\r\n")) != b"\r\n":
            trailers += field
            if len(trailers) > HEAD_LIMIT:
                raise ValueError("trailers too long")
        last = b"0\r\n" + self.substitution.apply(trailers, host) + b"\r\n"
        up_writer.write(last)
        self.counters.bytes_sent += len(last)
        await up_writer.drain()

    async def _exchange_tls(
        self,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """HTTPS to a host the box's secrets are for, the box's side already decrypted
        (``writer`` speaks TLS with the box's CA): the request is read, swapped and
        re-encrypted towards the real host, checked against the host's trust store."""
        assert self.tls is not None
        tls = self.tls
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")

            async def connect() -> Upstream | None:
                try:
                    await up_writer.start_tls(tls.upstream, server_hostname=host)
                except (ssl.SSLError, OSError) as exc:
                    await _reply(
                        writer,
                        502,
                        f"boxlite-mcp: TLS with {host} failed: {exc}; the "
                        "server checks it against the host's trust store "
                        "and --net-ca-file",
                    )
                    return None
                return up_reader, up_writer

            await self._exchange(line, rest, reader, writer, host, connect)
        finally:
            up_writer.close()

    async def _refuse_secret(
        self, writer: asyncio.StreamWriter, host: str, exc: SecretError
    ) -> None:
        self.on_denied(Verdict(False, host, reason=str(exc)))
        await _reply(writer, 403, f"boxlite-mcp: {exc}")

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
        if not self.substitution:
            await self._pipe(reader, writer, *upstream)
            return
        await self._socks_secrets(host, reader, writer, upstream)

    async def _socks_secrets(
        self,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: Upstream,
    ) -> None:
        """A SOCKS stream of a box with secrets gets what the HTTP proxy does: what it
        carries is told by its first byte. HTTP is rewritten (or refused) like a proxied
        request; TLS to a secret's host is terminated with the box's CA; anything else
        (TLS elsewhere, other protocols, and any where the server speaks first, such as
        an SSH or SMTP banner) stays an end-to-end tunnel."""
        up_reader, up_writer = upstream
        first, spoke = await _first_words(reader, up_reader)
        if spoke is not None:  # the server spoke first: no request to read
            writer.write(spoke)
            up_writer.write(first)
            await self._pipe(reader, writer, up_reader, up_writer)
            return
        if not first:
            up_writer.close()
            return
        if first == _TLS_HANDSHAKE:
            if self.tls is None or not self.substitution.wanted_by(host):
                up_writer.write(first)
                await self._pipe(reader, writer, up_reader, up_writer)
                return
            async with self._tls_inside(host, first, reader, writer) as (inner_r, inner_w):
                await self._exchange_tls(host, inner_r, inner_w, up_reader, up_writer)
            return
        if not first.isalpha():  # not an HTTP method
            up_writer.write(first)
            await self._pipe(reader, writer, up_reader, up_writer)
            return
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")

            async def connect() -> Upstream:
                return up_reader, up_writer

            await self._exchange(line, rest, reader, writer, host, connect)
        finally:
            up_writer.close()

    @contextlib.asynccontextmanager
    async def _tls_inside(
        self,
        host: str,
        first: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> AsyncIterator[Upstream]:
        """The box's TLS stream, decrypted with the box's CA, when its first byte has
        already been read: the bytes go through a socket pair whose far end speaks TLS
        (asyncio cannot start TLS on a stream that has buffered part of the handshake).
        On exit the answer is flushed to the box before the relay ends."""
        assert self.tls is not None
        near, far = socket.socketpair()
        relay_reader, relay_writer = await asyncio.open_connection(sock=near, limit=CHUNK)
        relay_writer.write(first)
        to_far = asyncio.ensure_future(copy(reader, relay_writer))
        to_box = asyncio.ensure_future(copy(relay_reader, writer))
        try:
            inner_reader = asyncio.StreamReader(limit=HEAD_LIMIT)
            protocol = asyncio.StreamReaderProtocol(inner_reader)
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    transport, _ = await loop.connect_accepted_socket(
                        lambda: protocol, far, ssl=self.tls.ca.server_context(host)
                    )
            except BaseException:
                far.close()
                raise
            inner_writer = asyncio.StreamWriter(transport, protocol, inner_reader, loop)
            try:
                yield inner_reader, inner_writer
            finally:
                inner_writer.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await to_box  # ends once the far end's close reaches the near end
        finally:
            to_far.cancel()
            to_box.cancel()
            relay_writer.close()

    # -- shared ---------------------------------------------------------------

    async def _open(self, host: str, port: int, refuse: Refuse, fail: Fail) -> Upstream | None:
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

    def _sent(self, n: int) -> None:
        self.counters.bytes_sent += n

    def _received(self, n: int) -> None:
        self.counters.bytes_received += n

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        await pipe(reader, writer, up_reader, up_writer, self._sent, self._received)


async def _first_words(
    reader: asyncio.StreamReader, up_reader: asyncio.StreamReader
) -> tuple[bytes, bytes | None]:
    """(the box's first byte, or b""; what the server said first, None if the box spoke
    first). Both reads are cancel-safe: a read cancelled while waiting takes nothing."""
    box = asyncio.ensure_future(reader.read(1))
    server = asyncio.ensure_future(up_reader.read(CHUNK))
    try:
        await asyncio.wait({box, server}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        box.cancel()
        server.cancel()
    first = box.result() if box.done() and not box.cancelled() else b""
    spoke = server.result() if server.done() and not server.cancelled() else None
    return first, spoke


def _expects_continue(headers: list[bytes]) -> bool:
    return any(
        h.partition(b":")[0].strip().lower() == b"expect"
        and h.partition(b":")[2].strip().lower() == b"100-continue"
        for h in headers
    )


def _is_chunked(headers: list[bytes]) -> bool:
    for h in headers:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


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
