"""What a connection is carrying when it is cut: a passive reader of both directions.

The proxy forwards bytes untouched; this module only watches them, so each cut
can be labelled with where it landed:

- ``request``: mid-way through a request the client was sending (``up``);
- ``response``: mid-way through a plain response (head or body);
- ``sse-mid-event`` / ``sse-between-events``: inside an SSE output stream, with
  the forwarded bytes ending inside an event or exactly after one;
- ``ws-mid-frame`` / ``ws-between-frames``: inside a WebSocket, server → client;
- ``ws-up``: client → server on a WebSocket (stdin, control frames).

It understands just enough HTTP/1.1 for that: request lines (the client sends a
request only after the previous response, as httpx does), response heads, chunked
bodies (SSE streams are chunked) and RFC 6455 frame headers. A label also names
the request the connection was serving, its ids replaced by ``{id}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (\S+) HTTP/1\.[01]\r\n")
_ID_SEGMENT = re.compile(r"/(?=[^/]*\d)[A-Za-z0-9._-]{8,}")
_HEAD_END = b"\r\n\r\n"
_STREAM_HEADERS = re.compile(rb"\r\n(accept:[^\r]*text/event-stream|upgrade:\s*websocket)", re.I)
_MAX_HEAD = 64 * 1024


def route_of(method: str, path: str) -> str:
    """``POST /v1/default/boxes/{id}/exec``: the path without query and ids."""
    path = path.split("?", 1)[0]
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


@dataclass(slots=True)
class _Chunked:
    """Position inside a chunked body: only the data bytes are passed on."""

    state: str = "size"  # size | data | data-crlf | trailer
    line: bytearray | None = None
    remaining: int = 0

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        i = 0
        if self.line is None:
            self.line = bytearray()
        while i < len(data):
            if self.state == "size" or self.state == "trailer":
                end = data.find(b"\n", i)
                if end < 0:
                    self.line += data[i:]
                    break
                self.line += data[i:end]
                i = end + 1
                text = bytes(self.line).strip()
                self.line.clear()
                if self.state == "trailer":
                    if not text:
                        self.state = "size"  # end of body; a new response follows
                    continue
                try:
                    size = int(text.split(b";", 1)[0], 16)
                except ValueError:
                    size = 0
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "data", size
            elif self.state == "data":
                take = min(self.remaining, len(data) - i)
                out += data[i : i + take]
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "data-crlf"
                    self.remaining = 2
            else:  # data-crlf
                take = min(self.remaining, len(data) - i)
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "size"
        return bytes(out)


@dataclass(slots=True)
class _Frames:
    """Position inside a sequence of RFC 6455 frames."""

    header: bytearray | None = None
    payload_left: int = 0

    def feed(self, data: bytes) -> None:
        if self.header is None:
            self.header = bytearray()
        i = 0
        while i < len(data):
            if self.payload_left:
                take = min(self.payload_left, len(data) - i)
                self.payload_left -= take
                i += take
                continue
            self.header.append(data[i])
            i += 1
            need = _header_size(self.header)
            if need is not None and len(self.header) == need:
                self.payload_left = _payload_size(self.header)
                self.header.clear()

    @property
    def at_boundary(self) -> bool:
        return self.payload_left == 0 and not self.header


def _header_size(header: bytearray) -> int | None:
    if len(header) < 2:
        return None
    size = 2 + (4 if header[1] & 0x80 else 0)
    length = header[1] & 0x7F
    return size + (2 if length == 126 else 8 if length == 127 else 0)


def _payload_size(header: bytearray) -> int:
    length = header[1] & 0x7F
    if length == 126:
        return int.from_bytes(header[2:4], "big")
    if length == 127:
        return int.from_bytes(header[2:10], "big")
    return length


class ConnectionTracker:
    """Follows one proxied connection; ``label(direction)`` says where a cut lands."""

    def __init__(self) -> None:
        self.route = "(no request yet)"
        self.stream = False  # the current request asks for an event stream or a WebSocket
        self._up_tail = b""
        self._websocket = False
        self._down_mode = "head"  # head | body | sse | ws
        self._head = bytearray()
        self._chunked: _Chunked | None = None
        self._sse_tail = b""
        self._frames = _Frames()

    # -- client → server -------------------------------------------------------------

    def up(self, data: bytes) -> int | None:
        """Feed client bytes; returns where in ``data`` a new request starts, if one does."""
        if self._websocket:
            return None
        scan = self._up_tail + data
        matches = list(_REQUEST_LINE.finditer(scan))
        last = matches[-1] if matches else None
        self._up_tail = scan[-256:]
        if last is None or last.end() <= len(scan) - len(data):
            return None
        self.route = route_of(last.group(1).decode(), last.group(2).decode("latin-1"))
        head_end = scan.find(_HEAD_END, last.end() - 2)
        head = scan[last.end() - 2 : head_end if head_end >= 0 else len(scan)]
        self.stream = _STREAM_HEADERS.search(head) is not None
        self._down_mode = "head"
        self._head.clear()
        self._chunked = None
        self._sse_tail = b""
        return max(0, last.start() - (len(scan) - len(data)))

    # -- server → client -------------------------------------------------------------

    def head_end(self, data: bytes) -> int | None:
        """Where in ``data`` (about to be fed) the current response head ends, if it does."""
        if self._down_mode != "head":
            return None
        found = (bytes(self._head[-3:]) + data).find(_HEAD_END)
        if found < 0:
            return None
        return found + 4 - len(self._head[-3:])

    def down(self, data: bytes) -> None:
        if self._down_mode == "head":
            self._head += data
            end = self._head.find(_HEAD_END)
            if end < 0:
                if len(self._head) > _MAX_HEAD:
                    self._down_mode = "body"
                return
            head, rest = bytes(self._head[:end]).lower(), bytes(self._head[end + 4 :])
            self._head.clear()
            if head.startswith(b"http/1.1 101") or head.startswith(b"http/1.0 101"):
                self._down_mode, self._websocket = "ws", True
            elif b"content-type: text/event-stream" in head:
                self._down_mode = "sse"
                if b"transfer-encoding: chunked" in head:
                    self._chunked = _Chunked()
            else:
                self._down_mode = "body"
            if rest:
                self.down(rest)
        elif self._down_mode == "sse":
            payload = self._chunked.feed(data) if self._chunked is not None else data
            if payload:
                self._sse_tail = (self._sse_tail + payload)[-2:]
        elif self._down_mode == "ws":
            self._frames.feed(data)

    # -- labels ----------------------------------------------------------------------

    def label(self, direction: str) -> str:
        """Where a cut made now, after the bytes fed so far, lands."""
        if direction == "up":
            return "ws-up" if self._websocket else "request"
        if self._down_mode == "ws":
            return "ws-between-frames" if self._frames.at_boundary else "ws-mid-frame"
        if self._down_mode == "sse":
            at_event_end = self._sse_tail == b"\n\n" or not self._sse_tail
            return "sse-between-events" if at_event_end else "sse-mid-event"
        return "response"
