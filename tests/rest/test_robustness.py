"""Servers that misbehave: the client stays bounded in time and memory and says what broke."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import boxlite_mcp.runtime.rest.runtime as runtime_module
from boxlite_mcp.runtime.errors import (
    BoxliteError,
    BoxTimeoutError,
    InternalError,
    UnavailableError,
)
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest

from .conftest import FAST, running, wire_box
from .fake import FakeBoxlite
from .serving import serve

pytestmark = pytest.mark.anyio

BOX = wire_box()


def raw_answer(request_line: bytes) -> bytes:
    """A raw server's answer: the box to a GET, a new execution to a POST."""
    body = json.dumps(BOX if request_line.startswith(b"GET") else {"execution_id": "e1"})
    status = b"200 OK" if request_line.startswith(b"GET") else b"201 Created"
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body.encode()
    )


QUICK = {**FAST, "timeout": 1.0, "stream_idle_timeout": 0.5, "retries": 0}

Handler = Callable[[Request], Awaitable[Response]]


def app_09(**handlers: Handler) -> Starlette:
    """A 0.9 server: ``box``, ``exec``, ``output``, ``metrics``, ``list``, ``files`` routes."""

    async def default_box(request: Request) -> Response:
        return JSONResponse(BOX)

    async def default_exec(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1"}, 201)

    root = "/v1/default"
    table = {
        "box": (f"{root}/boxes/{{box}}", ["GET"]),
        "exec": (f"{root}/boxes/{{box}}/exec", ["POST"]),
        "output": (f"{root}/boxes/{{box}}/executions/{{eid}}/output", ["GET"]),
        "files": (f"{root}/boxes/{{box}}/files", ["GET"]),
        "metrics": (f"{root}/metrics", ["GET"]),
        "list": (f"{root}/boxes", ["GET"]),
    }
    chosen = {"box": default_box, "exec": default_exec, **handlers}
    return Starlette(
        routes=[
            Route(table[name][0], handler, methods=table[name][1])
            for name, handler in chosen.items()
        ]
    )


async def call(
    app: Starlette, action: Callable[[RestRuntime], Awaitable[object]], **settings: object
) -> BoxliteError:
    async with serve(app) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", **{**QUICK, **settings})) as rt:
            with pytest.raises(BoxliteError) as caught:
                await asyncio.wait_for(action(rt), 10)
    return caught.value


async def test_a_malformed_answer_is_an_internal_error_without_pydantic_text() -> None:
    async def box(request: Request) -> Response:
        return JSONResponse({"name": "no id", "status": 7})

    error = await call(app_09(box=box), lambda rt: rt.get("b1"))
    assert isinstance(error, InternalError)
    assert "does not match the BoxLite API" in error.message
    assert "pydantic" not in error.message and "no id" not in error.message


@pytest.mark.parametrize(
    ("body", "headers", "complaint"),
    [
        (b"{" + b" " * (17 * 1024 * 1024) + b"}", {}, "larger than 16 MiB"),
        (
            gzip.compress(json.dumps({"boxes": []}).encode()),
            {"content-encoding": "gzip"},
            "compressed",
        ),
        (b"", {"location": "https://elsewhere.example/v1"}, "redirected"),
    ],
)
async def test_answers_too_big_compressed_or_redirected_are_refused(
    body: bytes, headers: dict[str, str], complaint: str
) -> None:
    async def listing(request: Request) -> Response:
        status = 307 if "location" in headers else 200
        return Response(body, status, headers=headers, media_type="application/json")

    error = await call(app_09(list=listing), lambda rt: rt.list())
    assert isinstance(error, InternalError) and complaint in error.message


async def test_a_trickling_answer_runs_into_the_deadline() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" "
            await asyncio.sleep(0.1)

    async def metrics(request: Request) -> Response:
        return StreamingResponse(trickle(), media_type="application/json")

    error = await call(app_09(metrics=metrics), lambda rt: rt.metrics())
    assert isinstance(error, BoxTimeoutError) and "did not answer within 1s" in error.message


async def test_a_trickling_download_is_given_up() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"\0" * 100
            await asyncio.sleep(0.1)

    async def files(request: Request) -> Response:
        return StreamingResponse(trickle(), media_type="application/x-tar")

    async def copy(rt: RestRuntime) -> None:
        await (await rt.get("b1")).copy_out("/root/x", Path("/nonexistent/never-written"))

    error = await call(app_09(files=files), copy)
    assert isinstance(error, BoxTimeoutError) and "less than 64 KiB in 1s" in error.message


async def test_endless_pages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "MAX_PAGES", 5)
    served = []

    async def listing(request: Request) -> Response:
        served.append(1)
        return JSONResponse({"boxes": [], "next_page_token": f"t{len(served)}"})

    error = await call(app_09(list=listing), lambda rt: rt.list())
    assert isinstance(error, InternalError) and "paginating" in error.message
    assert len(served) == 5


def sse(body: Callable[[], AsyncIterator[bytes]]) -> Handler:
    async def output(request: Request) -> Response:
        return StreamingResponse(body(), media_type="text/event-stream")

    return output


async def run_exec(rt: RestRuntime, **fields: object) -> object:
    execution = await (await rt.get("b1")).exec(ExecRequest(command="x", **fields))  # type: ignore[arg-type]
    return await execution.wait()


async def test_an_sse_event_over_the_cap_is_refused() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"event: stdout\ndata: "
        for _ in range(20):
            yield b"A" * 65536

    error = await call(app_09(output=sse(body)), run_exec, sse_max_event_bytes=256 * 1024)
    assert isinstance(error, InternalError) and "over 262144 bytes" in error.message


async def test_a_stalled_event_is_a_dropped_stream() -> None:
    connections: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        connections.append(1)
        if len(connections) == 1:
            yield b'id: 1\nevent: stdout\ndata: {"data":"'  # never completes
            await asyncio.sleep(30)
        yield b'id: 2\nevent: exit\ndata: {"exit_code":0}\n\n'

    async with serve(app_09(output=sse(body))) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", **QUICK)) as rt:
            result = await asyncio.wait_for(run_exec(rt), 10)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert len(connections) == 2


@pytest.mark.parametrize("generation", ["0.9", "0.10"])
async def test_a_server_that_never_ends_an_exec_past_its_timeout(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation, exec_grace=0.2) as runtime:
        box = await runtime.create(BoxOptions())
        execution = await box.exec(ExecRequest(command="sleep", timeout_seconds=0.3))
        result = await asyncio.wait_for(execution.wait(), 5)
    assert result.timed_out and result.exit_code == -9
    assert result.error_message is not None and "the client killed it" in result.error_message
    (state,) = fake.executions.values()
    assert 9 in state.signals


async def test_an_exec_whose_stream_stays_down_past_its_timeout_is_an_error() -> None:
    async def body() -> AsyncIterator[bytes]:  # every stream ends at once, without exit
        yield b": nothing here\n\n"

    error = await call(
        app_09(output=sse(body)),
        lambda rt: run_exec(rt, timeout_seconds=0.3),
        exec_grace=0.2,
        reconnect_seconds=30.0,
    )
    assert isinstance(error, UnavailableError) and "output stream was down" in error.message


def app_010(attach: Callable[[WebSocket], Awaitable[None]]) -> Starlette:
    async def box(request: Request) -> Response:
        return JSONResponse(BOX)

    async def start_exec(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1"}, 201)

    async def status(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1", "status": "running"})

    return Starlette(
        routes=[
            Route("/v1/boxes/{box}", box),
            Route("/v1/boxes/{box}/exec", start_exec, methods=["POST"]),
            Route("/v1/boxes/{box}/executions/{eid}", status),
            WebSocketRoute("/v1/boxes/{box}/executions/{eid}/attach", attach),
        ]
    )


async def exec_010(app: Starlette) -> BoxliteError:
    async with serve(app) as url:
        settings = RestSettings(
            url=url, api="0.10", path_prefix="", **QUICK, ws_max_message_bytes=128 * 1024
        )
        async with RestRuntime(settings) as rt:
            with pytest.raises(BoxliteError) as caught:
                await asyncio.wait_for(run_exec(rt), 10)
    return caught.value


async def test_a_websocket_message_over_the_cap_is_refused() -> None:
    async def attach(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_bytes(b"\x01" + b"y" * 200_000)
        await asyncio.sleep(5)

    error = await exec_010(app_010(attach))
    assert isinstance(error, InternalError) and "over 131072 bytes" in error.message


async def test_a_handshake_with_a_wrong_accept_is_refused() -> None:
    """A raw server (uvicorn would answer correctly): a 101 with a bogus accept."""
    upgrades: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            line = head.split(b"\r\n", 1)[0]
            length = next(
                (
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            if b"/attach" in line:
                upgrades.append(line)
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: bogus=\r\n\r\n"
                )
                await writer.drain()
                writer.close()
                return
            writer.write(raw_answer(line))
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        settings = RestSettings(url=f"http://127.0.0.1:{port}", api="0.10", path_prefix="", **QUICK)
        async with RestRuntime(settings) as rt:
            with pytest.raises(InternalError) as caught:
                await asyncio.wait_for(run_exec(rt), 10)
    assert "Sec-WebSocket-Accept" in caught.value.message
    assert len(upgrades) == 1
