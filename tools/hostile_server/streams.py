"""Hostile exec output: malformed SSE streams (0.9) and WebSocket attaches (0.10).

SSE handlers answer ``GET .../executions/{id}/output``; WebSocket handlers serve
``.../attach``. Frame-level breakage (reserved opcodes, masked server frames, a
frame that claims 2^40 bytes, a handshake with the wrong accept key) is written
raw on the connection (``raw.py``); the rest goes through Starlette.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from .base import HELLO, Ctx, pace, sse_event
from .raw import accept_key, write_raw, ws_frame

HELLO_B64 = base64.b64encode(HELLO).decode()
STDOUT_HELLO = sse_event("stdout", json.dumps({"data": HELLO_B64}))
EXIT_0 = sse_event("exit", '{"exit_code":0,"duration_ms":1}')
CHUNK = 64 * 1024


def _sse(chunks: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(chunks, media_type="text/event-stream")


async def _parts(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# -- SSE -----------------------------------------------------------------------------


async def sse_bad_base64(ctx: Ctx) -> Response:
    return _sse(_parts(sse_event("stdout", '{"data":"!!not*base64!!"}'), EXIT_0))


async def sse_non_json(ctx: Ctx) -> Response:
    return _sse(_parts(sse_event("stdout", "hello world"), EXIT_0))


async def sse_missing_exit(ctx: Ctx) -> Response:
    """Output with an id, then the end of the stream; resumed, nothing more, ever."""
    if ctx.request is not None and ctx.request.headers.get("last-event-id"):
        return _sse(_parts())
    return _sse(_parts(sse_event("stdout", json.dumps({"data": HELLO_B64}), "6-0")))


async def sse_missing_exit_replay(ctx: Ctx) -> Response:
    """Output without ids, then the end; every reconnect gets the same output again."""
    return _sse(_parts(STDOUT_HELLO))


async def sse_replay_ignoring_id(ctx: Ctx) -> Response:
    """Ids, but ``Last-Event-ID`` is ignored: every reconnect replays, none ends."""
    return _sse(_parts(sse_event("stdout", json.dumps({"data": HELLO_B64}), "1")))


async def sse_invalid_utf8(ctx: Ctx) -> Response:
    bad = b'event: stdout\ndata: {"data":"aGVsbG8K\xff\xfe"}\n\n'
    return _sse(_parts(b"event: std\xc3\x28out\ndata: x\n\n", bad, EXIT_0))


async def _gigantic_line(ctx: Ctx) -> AsyncIterator[bytes]:
    yield b"event: stdout\ndata: "
    sent, block = 0, b"A" * CHUNK
    while sent < ctx.config.big_bytes:
        yield block
        sent += len(block)
        await pace()
    yield b"\n\n" + EXIT_0


async def sse_gigantic_line(ctx: Ctx) -> Response:
    return _sse(_gigantic_line(ctx))


async def _endless_event(ctx: Ctx) -> AsyncIterator[bytes]:
    yield b"event: stdout\n"
    sent, block = 0, (b"data: " + b"x" * 1017 + b"\n") * (CHUNK // 1024)
    while sent < ctx.config.big_bytes:
        yield block
        sent += len(block)
        await pace()
    yield b"\n" + EXIT_0


async def sse_endless_event(ctx: Ctx) -> Response:
    """One event of ``big_bytes`` of ``data:`` lines, never dispatched until the end."""
    return _sse(_endless_event(ctx))


async def _keepalives(ctx: Ctx) -> AsyncIterator[bytes]:
    while True:
        yield b": keep-alive\n\n"
        await asyncio.sleep(ctx.config.trickle_seconds)


async def sse_keepalive_forever(ctx: Ctx) -> Response:
    return _sse(_keepalives(ctx))


async def _yes_events(limit: int) -> AsyncIterator[bytes]:
    """stdout events of ``y`` lines, CHUNK bytes each, until ``limit`` bytes went out."""
    event = sse_event(
        "stdout", json.dumps({"data": base64.b64encode(b"y\n" * (CHUNK // 2)).decode()})
    )
    sent = 0
    while sent < limit:
        yield event
        sent += CHUNK
        await pace()


async def sse_output_forever(ctx: Ctx) -> Response:
    return _sse(_yes_events(ctx.config.endless_bytes))


async def _output_big(ctx: Ctx) -> AsyncIterator[bytes]:
    async for event in _yes_events(ctx.config.big_bytes):
        yield event
    yield EXIT_0


async def sse_output_big(ctx: Ctx) -> Response:
    """``big_bytes`` of stdout, then exit 0."""
    return _sse(_output_big(ctx))


async def _sse_trickle(ctx: Ctx) -> AsyncIterator[bytes]:
    yield b'event: stdout\ndata: {"data":"'
    while True:
        await asyncio.sleep(ctx.config.trickle_seconds)
        yield b"A"


async def sse_trickle(ctx: Ctx) -> Response:
    return _sse(_sse_trickle(ctx))


async def sse_wrong_content_type(ctx: Ctx) -> Response:
    return JSONResponse({"stdout": "hello\n", "exit_code": 0})


async def sse_exit_bad_shape(ctx: Ctx) -> Response:
    return _sse(_parts(STDOUT_HELLO, sse_event("exit", '{"exit_code":"0"}')))


async def sse_error_then_end(ctx: Ctx) -> Response:
    return _sse(_parts(STDOUT_HELLO, sse_event("error", "the box crashed")))


async def sse_unknown_events(ctx: Ctx) -> Response:
    return _sse(
        _parts(
            b": comment\n\nretry: 1\n\n",
            sse_event("progress", '{"pct":50}'),
            b"event: \n\n",
            STDOUT_HELLO,
            EXIT_0,
        )
    )


# -- WebSocket (Starlette) -----------------------------------------------------------


def _exit_frame(**extra: object) -> str:
    return json.dumps({"type": "exit", "exit_code": 0, **extra})


async def _frames(ctx: Ctx, *frames: bytes | str, close: bool = True) -> None:
    ws = ctx.websocket
    assert ws is not None
    await ws.accept()
    for frame in frames:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_text(frame)
    if close:
        await ws.close(1000)


async def ws_unknown_prefix(ctx: Ctx) -> None:
    await _frames(ctx, b"\x07junk", b"\x01" + HELLO, _exit_frame())


async def ws_empty_binary(ctx: Ctx) -> None:
    await _frames(ctx, b"", b"\x01" + HELLO, _exit_frame())


async def ws_invalid_json_text(ctx: Ctx) -> None:
    await _frames(ctx, "{not json", "[1,2]", b"\x01" + HELLO, _exit_frame())


async def ws_exit_without_code(ctx: Ctx) -> None:
    await _frames(ctx, b"\x01" + HELLO, '{"type":"exit"}')


async def ws_exit_code_string(ctx: Ctx) -> None:
    await _frames(ctx, b"\x01" + HELLO, '{"type":"exit","exit_code":"0"}')


async def ws_close_without_exit(ctx: Ctx) -> None:
    await _frames(ctx)


async def ws_close_replay(ctx: Ctx) -> None:
    """Output, then a normal close without the exit frame; offsets ignored: replayed."""
    await _frames(ctx, b"\x01" + HELLO)


async def _until_gone(ctx: Ctx) -> None:
    ws = ctx.websocket
    assert ws is not None
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass


async def ws_silent_forever(ctx: Ctx) -> None:
    assert ctx.websocket is not None
    await ctx.websocket.accept()
    await _until_gone(ctx)


async def ws_output_forever(ctx: Ctx) -> None:
    ws = ctx.websocket
    assert ws is not None
    await ws.accept()
    frame, sent = b"\x01" + b"y\n" * (CHUNK // 2), 0
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while sent < ctx.config.endless_bytes:
            await ws.send_bytes(frame)  # returns at once, unsuspended, once the socket closes
            sent += len(frame)
            await pace()


async def exec_status_bogus(ctx: Ctx) -> Response:
    return JSONResponse({"status": 5, "exit_code": "zero"})


# -- WebSocket (raw frames) ----------------------------------------------------------


async def _raw_after_accept(ctx: Ctx, chunks: AsyncIterator[bytes]) -> None:
    """Accept, write raw bytes (until the client leaves, for endless ones), then close."""
    ws = ctx.websocket
    assert ws is not None
    await ws.accept()
    transport = ctx.transports.of(ws.scope)
    writer = asyncio.get_running_loop().create_task(write_raw(transport, chunks))
    gone = asyncio.get_running_loop().create_task(_until_gone(ctx))
    await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
    writer.cancel()
    await asyncio.sleep(0.05)
    transport.close()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await writer
    gone.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await gone


async def ws_bad_opcode(ctx: Ctx) -> None:
    await _raw_after_accept(ctx, _parts(ws_frame(0x3, b"??")))


async def ws_masked(ctx: Ctx) -> None:
    await _raw_after_accept(
        ctx,
        _parts(
            ws_frame(0x2, b"\x01" + HELLO, mask=b"\x11\x22\x33\x44"),
            ws_frame(0x1, _exit_frame().encode()),
        ),
    )


async def ws_invalid_utf8_text(ctx: Ctx) -> None:
    await _raw_after_accept(ctx, _parts(ws_frame(0x1, b'{"type":"exit","exit_code":0\xff}')))


async def _huge_frame(ctx: Ctx) -> AsyncIterator[bytes]:
    yield ws_frame(0x2, b"", length=1 << 40)[:10] + b"\x01"
    sent, block = 0, b"z" * CHUNK
    while sent < ctx.config.big_bytes:
        yield block
        sent += len(block)
        await pace()


async def ws_huge_message(ctx: Ctx) -> None:
    """One binary frame that claims 2^40 bytes, sends ``big_bytes`` of them, closes."""
    await _raw_after_accept(ctx, _huge_frame(ctx))


async def _frame_trickle(ctx: Ctx) -> AsyncIterator[bytes]:
    yield ws_frame(0x2, b"", length=1 << 40)[:10] + b"\x01"
    while True:
        await asyncio.sleep(ctx.config.trickle_seconds)
        yield b"z"


async def ws_frame_trickle(ctx: Ctx) -> None:
    """One binary frame that claims 2^40 bytes and trickles them, one per 0.1 s."""
    await _raw_after_accept(ctx, _frame_trickle(ctx))


async def ws_bad_accept(ctx: Ctx) -> None:
    """A 101 whose ``Sec-WebSocket-Accept`` does not match the client's key."""
    ws = ctx.websocket
    assert ws is not None
    key = ws.headers.get("sec-websocket-key", "")
    wrong = accept_key(key + "x")
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {wrong}\r\n\r\n"
    ).encode()
    transport = ctx.transports.of(ws.scope)
    await write_raw(
        transport,
        _parts(
            head,
            ws_frame(0x2, b"\x01" + HELLO),
            ws_frame(0x1, _exit_frame().encode()),
            ws_frame(0x8, (1000).to_bytes(2, "big")),
        ),
    )
    await asyncio.sleep(0.05)
    transport.close()


async def ws_no_upgrade(ctx: Ctx) -> None:
    ws = ctx.websocket
    assert ws is not None
    body = b'{"stdout":"hello\\n","exit_code":0}'
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    transport = ctx.transports.of(ws.scope)
    await write_raw(transport, _parts(head + body))
    await asyncio.sleep(0.05)
    transport.close()
