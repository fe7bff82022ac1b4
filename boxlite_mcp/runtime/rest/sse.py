"""A bounded Server-Sent Events reader over a byte stream (the WHATWG event-stream format).

Why not httpx-sse: it buffers a line or an event of any size, decodes every byte
to text, and carries the last event id over to events that had none. This reader
works on bytes (exec output is base64: no text decoding on the hot path), refuses
a line or an event over ``max_event_bytes`` (a hostile server cannot grow the
client's memory), reports whether an event carried its own ``id``, and notices an
event that never completes: ``stall_seconds`` after an event's first byte without
its end, it raises ``SseStalled`` (a trickling server looks alive to a read timeout).
"""

from __future__ import annotations

# asyncio: a stall deadline moved as events arrive (asyncio.timeout on the loop clock).
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..errors import InternalError


@dataclass(slots=True)
class ServerEvent:
    """One dispatched event. ``id`` is its own ``id`` field, None when it had none."""

    event: str
    data: bytes
    id: str | None


class SseStalled(Exception):
    """An event began and did not end in time: the connection is treated as dropped."""


class SseTooLarge(InternalError):
    """A line or an event over the size cap."""


async def read_events(
    chunks: AsyncIterator[bytes], *, max_event_bytes: int, stall_seconds: float | None
) -> AsyncIterator[ServerEvent]:
    """Events from ``chunks``; an incomplete event at the end of the stream is dropped."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    event = ""
    data: list[bytes] = []
    size = 0
    ident: str | None = None
    started: float | None = None  # when the pending event's first byte arrived
    iterator = chunks.__aiter__()
    while True:
        if started is not None and stall_seconds is not None:
            remaining = started + stall_seconds - loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    chunk = await anext(iterator)
            except TimeoutError:
                raise SseStalled(f"an event did not complete within {stall_seconds:g}s") from None
            except StopAsyncIteration:
                return
        else:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
        if not chunk:
            continue
        if started is None:
            started = loop.time()
        buffer += chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, end if end >= 0 else len(buffer))
            if cr >= 0 and (end < 0 or cr < end):
                if cr == len(buffer) - 1:
                    break  # a CR at the end: wait for a possible LF
                line = bytes(buffer[start:cr])
                start = cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
            elif end >= 0:
                line = bytes(buffer[start:end])
                start = end + 1
            else:
                break
            if not line:  # a blank line dispatches
                if data or event or ident is not None:
                    yield ServerEvent(event or "message", b"\n".join(data), ident)
                event, data, size, ident = "", [], 0, None
                continue
            if line[:1] == b":":
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                size += len(value) + 1
                if size > max_event_bytes:
                    raise SseTooLarge(
                        f"the server sent an SSE event over {max_event_bytes} bytes; refused"
                    )
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" not in value:
                    ident = value.decode("utf-8", "replace")
        if start:
            del buffer[:start]
        if not buffer and not data and not event and ident is None:
            started = None  # between events: silence is the idle timeout's business
        if len(buffer) > max_event_bytes:
            raise SseTooLarge(f"the server sent an SSE line over {max_event_bytes} bytes; refused")
