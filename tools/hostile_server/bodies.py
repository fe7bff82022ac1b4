"""Hostile answers to plain requests: bogus JSON shapes, wrong content types, huge or
compressed bodies, endless pagination, odd statuses, and HTTP broken on the wire."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator

from starlette.responses import JSONResponse, Response, StreamingResponse

from .base import Ctx, box_body, pace
from .raw import RawResponse

CHUNK = 64 * 1024


def _json(value: object, status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(value),
        status_code=status,
        media_type="application/json",
        headers=headers or None,
    )


# -- bogus shapes --------------------------------------------------------------------


async def box_missing_id(ctx: Ctx) -> Response:
    return _json({"name": "b", "status": "running"}, 201)


async def box_wrong_types(ctx: Ctx) -> Response:
    return _json({"box_id": 5, "status": 7, "created_at": "yesterday", "labels": [1]})


async def box_array(ctx: Ctx) -> Response:
    return _json([1, 2, 3])


async def box_not_json(ctx: Ctx) -> Response:
    return Response("OK", media_type="text/plain")


async def box_deep_nesting(ctx: Ctx) -> Response:
    depth = 200_000
    return Response("[" * depth + "]" * depth, media_type="application/json")


async def list_not_list(ctx: Ctx) -> Response:
    return _json({"boxes": "many"})


async def list_endless_pages(ctx: Ctx) -> Response:
    """Every page has one box and a fresh next_page_token: the list never ends."""
    page = int(ctx.query.get("pageToken", "t0")[1:] or 0)
    return _json(
        {"boxes": [box_body(ctx, f"box-page-{page}", None)], "next_page_token": f"t{page + 1}"}
    )


async def exec_bogus_id(ctx: Ctx) -> Response:
    return _json({"execution_id": 12}, 201)


async def snapshot_bogus(ctx: Ctx) -> Response:
    return _json({"snapshots": [{"name": 1, "created_at": "then"}]})


async def metrics_bogus(ctx: Ctx) -> Response:
    return _json({"cpu_percent": "lots", "boot_timing": [], "commands_executed_total": -1.5})


async def config_bogus(ctx: Ctx) -> Response:
    return _json({"capabilities": [], "defaults": "none"})


async def me_bogus(ctx: Ctx) -> Response:
    return _json({"path_prefix": 7})


async def token_bogus(ctx: Ctx) -> Response:
    return _json({"access_token": 5, "expires_in": "soon"})


async def json_wrong_content_type(ctx: Ctx) -> Response:
    return Response(json.dumps(box_body(ctx)), media_type="text/html")


async def redirect(ctx: Ctx) -> Response:
    return Response(status_code=302, headers={"location": "http://127.0.0.1:9/elsewhere"})


async def empty_201(ctx: Ctx) -> Response:
    return Response(status_code=201)


# -- errors and sizes ----------------------------------------------------------------


async def error_html(ctx: Ctx) -> Response:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "<p>x</p>" * 400
    return Response(page + "</body></html>", status_code=500, media_type="text/html")


async def _repeat(
    total: int, head: bytes = b"", tail: bytes = b"", block: bytes = b"x" * CHUNK
) -> AsyncIterator[bytes]:
    yield head
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
        await pace()
    yield tail


async def error_huge_body(ctx: Ctx) -> Response:
    return StreamingResponse(
        _repeat(ctx.config.big_bytes), status_code=404, media_type="text/plain"
    )


async def error_huge_message(ctx: Ctx) -> Response:
    return StreamingResponse(
        _repeat(
            ctx.config.big_bytes, b'{"error":{"type":"InvalidArgumentError","message":"', b'"}}'
        ),
        status_code=400,
        media_type="application/json",
    )


async def huge_json(ctx: Ctx) -> Response:
    head = json.dumps(box_body(ctx))[:-1].encode() + b', "padding": "'
    return StreamingResponse(
        _repeat(ctx.config.big_bytes, head, b'"}'), media_type="application/json"
    )


def _gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    zeros = b"\0" * (1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join(parts) + compressor.flush()


_BOMBS: dict[int, bytes] = {}


async def gzip_bomb(ctx: Ctx) -> Response:
    """A few KB on the wire per MiB; ``big_bytes`` of zeros once decompressed."""
    size = ctx.config.big_bytes
    if size not in _BOMBS:
        _BOMBS[size] = await asyncio.to_thread(_gzip_bomb, size)
    return Response(
        _BOMBS[size], media_type="application/json", headers={"content-encoding": "gzip"}
    )


async def retry_after_huge(ctx: Ctx) -> Response:
    return _json(
        {"error": {"message": "come back tomorrow", "type": "UnavailableError"}},
        503,
        **{"retry-after": "100000"},
    )


async def too_many_requests(ctx: Ctx) -> Response:
    return _json(
        {"error": {"message": "slow down", "type": "RateLimited"}}, 429, **{"retry-after": "1"}
    )


# -- broken on the wire --------------------------------------------------------------


def _raw(ctx: Ctx, chunks: AsyncIterator[bytes]) -> Response:
    return RawResponse(ctx.transports, lambda: chunks)


async def _parts(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _trickle(ctx: Ctx, head: bytes) -> AsyncIterator[bytes]:
    yield head
    while True:
        await asyncio.sleep(ctx.config.trickle_seconds)
        yield b"a"


async def http_garbage_status(ctx: Ctx) -> Response:
    return _raw(ctx, _parts(b"HTTP/1.1 abc defg\r\n\r\n"))


async def http_close_immediately(ctx: Ctx) -> Response:
    return _raw(ctx, _parts())


async def http_header_flood(ctx: Ctx) -> Response:
    return _raw(
        ctx, _repeat(ctx.config.big_bytes, b"HTTP/1.1 200 OK\r\nX-Flood: ", block=b"f" * CHUNK)
    )


async def http_header_trickle(ctx: Ctx) -> Response:
    return _raw(ctx, _trickle(ctx, b"HTTP/1.1 200 OK\r\nX-Slow: "))


async def http_body_trickle(ctx: Ctx) -> Response:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000000\r\n\r\n{"box_id": "'
    )
    return _raw(ctx, _trickle(ctx, head))


async def http_length_mismatch(ctx: Ctx) -> Response:
    return _raw(
        ctx,
        _parts(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"box_id":'
        ),
    )


async def http_bad_chunked(ctx: Ctx) -> Response:
    return _raw(
        ctx,
        _parts(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        ),
    )


async def http_silent(ctx: Ctx) -> Response:
    """Reads the request, never answers (until the client gives up)."""

    async def nothing() -> AsyncIterator[bytes]:
        await asyncio.sleep(3600)
        yield b""

    return _raw(ctx, nothing())


async def export_trickle(ctx: Ctx) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"BOXLITE"
        while True:
            await asyncio.sleep(ctx.config.trickle_seconds)
            yield b"\0"

    return StreamingResponse(body(), media_type="application/octet-stream")


def not_found_json() -> Response:
    return JSONResponse(
        {"error": {"message": "no such behaviour", "type": "NotFoundError"}}, status_code=404
    )
