"""HTTP/1.1 written and read by hand, for the two requests of each exec's hot path.

Why hand-written: every exec sends ``POST .../exec`` and then upgrades a second
connection for the attach. Through httpx and httpcore each request builds
request and response models, runs h11's state machine, takes the pool's locks
(which yield to the event loop on every acquire) and walks the pool's
bookkeeping; profiled (``docs/benchmarks.md``), those layers were more than
half of the client's CPU per round trip of ``true``, against the official SDK's
native client. Here a request is one ``write`` of a head we build, and an answer
is read through one buffer.

Scope, deliberately narrow (everything else stays with httpx, which handles all
of HTTP):

- ``Lane``: one kept-alive connection for requests a caller opts into (the exec
  ``POST``), one at a time; while it is busy, or where a proxy is configured,
  the caller uses the pool. Answers with ``Content-Length``, chunked, or
  delimited by the connection's end are read; anything malformed is
  ``httpx.RemoteProtocolError``, as httpx would raise, so the client's retry
  rules apply unchanged. Bodies are read up to one byte over the cap the
  caller gives, so that the caller's own check refuses them (``bodies.py``).
- ``read_head``/``parse_head``: the answer to the attach upgrade (``upgrade.py``),
  where only a ``101`` is taken and anything else goes to the pooled client.

A head we write is refused (None) if any name or value holds CR, LF or NUL: the
caller then goes through httpx, which refuses such headers with its own error.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import httpcore
import httpx

#: What may not appear in a head we write (CR or LF would split lines; NUL).
_UNSAFE = re.compile(r"[\x00\r\n]")
#: The most an answer's head, or one chunk-size line, may take.
HEAD_BYTES = 64 * 1024
_READ = 256 * 1024
#: Seconds a kept connection may idle before it is replaced rather than reused
#: (httpx's default: servers commonly drop idle connections after 5 s or more, and
#: one dropped just as a request goes out would fail that request).
KEEPALIVE_EXPIRY = 5.0


def request_head(method: str, url: str, headers: Mapping[str, str]) -> bytes | None:
    """The head of a request for absolute ``url``; None if a header cannot be sent safely."""
    scheme_end = url.find("://")
    slash = url.find("/", scheme_end + 3)
    host = url[scheme_end + 3 : slash] if slash >= 0 else url[scheme_end + 3 :]
    path = url[slash:] if slash >= 0 else "/"
    if "@" in host:
        return None  # credentials in the URL: httpx knows what to do with them
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if any(_UNSAFE.search(line) for line in lines):
        return None
    text = "\r\n".join(lines)
    if not text.isascii() or " " in path:
        return None
    return (text + "\r\n\r\n").encode("ascii")


class Reader:
    """A buffer over a network stream: heads, lines and exact lengths."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, buffered: bytes = b"") -> None:
        self.stream = stream
        self.buffer = bytearray(buffered)
        self.ended = False

    async def _fill(self) -> bool:
        if self.ended:
            return False
        chunk = await self.stream.read(_READ)
        if not chunk:
            self.ended = True
            return False
        self.buffer += chunk
        return True

    async def until(self, marker: bytes, limit: int, what: str) -> bytes:
        """The bytes before ``marker`` (which is consumed); at most ``limit`` of them."""
        start = 0
        while True:
            end = self.buffer.find(marker, start)
            if end >= 0:
                data = bytes(self.buffer[:end])
                del self.buffer[: end + len(marker)]
                return data
            if len(self.buffer) > limit:
                raise httpx.RemoteProtocolError(f"{what} is over {limit} bytes")
            start = max(0, len(self.buffer) - len(marker) + 1)
            if not await self._fill():
                raise httpx.RemoteProtocolError(f"the connection ended inside {what}")

    async def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not await self._fill():
                raise httpx.RemoteProtocolError("the connection ended inside the answer's body")
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    async def to_end(self, limit: int) -> bytes:
        """Everything until the connection ends, stopping after ``limit`` bytes."""
        while len(self.buffer) <= limit and await self._fill():
            pass
        data = bytes(self.buffer[: limit + 1])
        self.buffer.clear()
        return data


async def read_head(stream: httpcore.AsyncNetworkStream) -> tuple[bytes, bytes]:
    """An answer's head (status line and headers) and whatever followed it."""
    reader = Reader(stream)
    head = await reader.until(b"\r\n\r\n", HEAD_BYTES, "the answer's head")
    return head, bytes(reader.buffer)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers (names in lower case) of an HTTP/1.x answer's head.

    Anything malformed is status 0 (the caller treats it as a protocol error or
    hands the request to httpx). An HTTP/1.0 answer without keep-alive gets
    ``connection: close``.
    """
    status_line, _, rest = head.partition(b"\r\n")
    version, _, tail = status_line.partition(b" ")
    code = tail[:3]
    well_formed = code.isdigit() and tail[3:4] in (b"", b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not well_formed:
        return 0, {}
    headers: dict[str, str] = {}
    for line in rest.split(b"\r\n") if rest else ():
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            return 0, {}
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if version == b"HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
        headers["connection"] = "close"
    return int(code), headers


async def _chunked(reader: Reader, cap: int) -> tuple[bytes, bool]:
    """A chunked body (at most ``cap`` + 1 bytes) and whether the connection is reusable."""
    body = bytearray()
    while True:
        line = await reader.until(b"\r\n", HEAD_BYTES, "a chunk's size line")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            raise httpx.RemoteProtocolError("a chunk's size is not hexadecimal")
        size = int(size_text, 16)
        if size == 0:
            while await reader.until(b"\r\n", HEAD_BYTES, "the trailers"):
                pass
            return bytes(body), True
        if len(body) + size > cap:
            body += await reader.exactly(min(size, cap + 1 - len(body)))
            return bytes(body), False  # over the cap: the caller refuses it
        body += await reader.exactly(size)
        if await reader.exactly(2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")


async def read_body(
    reader: Reader, status: int, headers: Mapping[str, str], cap: int, *, head_request: bool
) -> tuple[bytes, bool]:
    """The answer's body (at most ``cap`` + 1 bytes) and whether the connection may be
    reused (RFC 9112 section 6.3, for the answers a client gets)."""
    reusable = "close" not in headers.get("connection", "").lower()
    if head_request or status in (204, 304) or 100 <= status < 200:
        return b"", reusable
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.strip().lower() != "chunked":
            raise httpx.RemoteProtocolError(f"unsupported transfer coding {coding[:40]!r}")
        body, complete = await _chunked(reader, cap)
        return body, reusable and complete
    length = headers.get("content-length")
    if length is None:
        return await reader.to_end(cap), False
    if not length.isdigit():
        raise httpx.RemoteProtocolError(f"invalid Content-Length {length[:40]!r}")
    size = int(length)
    if size > cap:
        return await reader.exactly(cap + 1), False
    return await reader.exactly(size), reusable


class _Body(httpx.AsyncByteStream):
    """An answer's body, already read, as httpx's response stream."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._content:
            yield self._content


Connect = Callable[[str], Awaitable[httpcore.AsyncNetworkStream | None]]


class Lane:
    """One kept-alive connection for opted-in requests, one at a time (module docstring)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._idle: httpcore.AsyncNetworkStream | None = None
        self._idle_since = 0.0
        self._busy = False

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, cap: int
    ) -> httpx.Response | None:
        """The answer, body read; None when the lane cannot take it (busy, unsafe head,
        no direct connection): the caller uses the pool. Transport failures raise
        httpx's exceptions: ``ConnectError`` if nothing was sent."""
        if self._busy:
            return None
        fields = dict(headers)
        if body or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body))
        head = request_head(method, url, fields)
        if head is None:
            return None
        self._busy = True
        stream, self._idle = self._idle, None
        try:
            if stream is not None and (
                time.monotonic() - self._idle_since > KEEPALIVE_EXPIRY
                or stream.get_extra_info("is_readable")  # closed by the server, or junk
            ):
                await stream.aclose()
                stream = None
            if stream is None:
                stream = await self._connect(url)
                if stream is None:
                    return None
            try:
                status, answer_headers, content, reusable = await self._exchange(
                    stream, head + body, method, cap
                )
            except BaseException:
                await stream.aclose()
                raise
            if reusable:
                self._idle, self._idle_since = stream, time.monotonic()
            else:
                await stream.aclose()
        finally:
            self._busy = False
        return httpx.Response(status, headers=list(answer_headers.items()), stream=_Body(content))

    @staticmethod
    async def _exchange(
        stream: httpcore.AsyncNetworkStream, request: bytes, method: str, cap: int
    ) -> tuple[int, dict[str, str], bytes, bool]:
        try:
            await stream.write(request)
            reader = Reader(stream)
            head = await reader.until(b"\r\n\r\n", HEAD_BYTES, "the answer's head")
            status, headers = parse_head(head)
            if status < 200:  # malformed, or an interim answer nobody asked for
                raise httpx.RemoteProtocolError(
                    f"the server's answer is not HTTP/1.1 ({head[:40]!r})"
                )
            content, reusable = await read_body(
                reader, status, headers, cap, head_request=method == "HEAD"
            )
        except httpcore.WriteError as exc:
            raise httpx.WriteError(str(exc)) from exc
        except httpcore.ReadError as exc:
            raise httpx.ReadError(str(exc)) from exc
        except httpcore.TimeoutException as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        return status, headers, content, reusable and not reader.buffer

    async def aclose(self) -> None:
        stream, self._idle = self._idle, None
        if stream is not None:
            await stream.aclose()
