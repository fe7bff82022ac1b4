"""0.10 attach sockets as a server might send them: control frames, refusals, lost output."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from boxlite_mcp.runtime.errors import InternalError, InvalidStateError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import ExecRequest, ExecResult

from .conftest import FAST, wire_box
from .serving import serve

pytestmark = pytest.mark.anyio

BOX = wire_box()

Attach = Callable[[WebSocket, int], Awaitable[None]]


def ws_server(attach: Attach, queries: list[str], status: str = "running") -> Starlette:
    """A 0.10 server whose one execution is attached by ``attach(ws, nth_attach)``."""

    async def get_box(request: Request) -> Response:
        return JSONResponse(BOX)

    async def start_exec(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1"}, 201)

    async def execution(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1", "status": status, "exit_code": None})

    async def attach_route(websocket: WebSocket) -> None:
        queries.append(websocket.url.query)
        await attach(websocket, len(queries) - 1)

    return Starlette(
        routes=[
            Route("/v1/boxes/{box}", get_box),
            Route("/v1/boxes/{box}/exec", start_exec, methods=["POST"]),
            Route("/v1/boxes/{box}/executions/{eid}", execution),
            WebSocketRoute("/v1/boxes/{box}/executions/{eid}/attach", attach_route),
        ]
    )


Outcome = tuple[bytes, bytes, ExecResult, list[str]]


async def run(attach: Attach, status: str = "running") -> Outcome:
    queries: list[str] = []
    async with serve(ws_server(attach, queries, status)) as url:
        settings = RestSettings(url=url, api="0.10", path_prefix="", **FAST)
        async with RestRuntime(settings) as runtime:
            box = await runtime.get("b1")
            execution = await box.exec(ExecRequest(command="x"))
            out, err = bytearray(), bytearray()
            async for chunk in execution.output():
                (out if chunk.stream == "stdout" else err).extend(chunk.data)
            result = await execution.wait()
    return bytes(out), bytes(err), result, queries


async def exit_frame(ws: WebSocket, code: int = 0, **extra: object) -> None:
    await ws.send_text(json.dumps({"type": "exit", "exit_code": code, **extra}))
    await ws.close(1000)


async def test_channels_control_frames_and_exit() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        await ws.send_bytes(b"\x01out")
        await ws.send_bytes(b"\x02err")
        await ws.send_bytes(b"\x03unknown channel")
        await ws.send_bytes(b"")
        await ws.send_text('{"type": "progress"}')
        await ws.send_text("not json")
        await ws.send_text('{"type": "error", "message": "signal 99 refused"}')
        await ws.send_bytes(b"\x01 more")
        await exit_frame(ws, 7, duration_ms=33)

    out, err, result, _ = await run(attach)
    assert (out, err) == (b"out more", b"err")
    assert result.exit_code == 7 and result.duration_ms == 33
    assert result.error_message == "signal 99 refused"


async def test_a_cut_socket_is_reattached_with_offsets() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        if nth == 0:
            await ws.send_bytes(b"\x01hello ")
            await ws.send_bytes(b"\x02warn")
            await ws.close(1011)
            return
        assert ws.query_params["stdout_offset"] == "6"
        assert ws.query_params["stderr_offset"] == "4"
        await ws.send_bytes(b"\x01world")
        await exit_frame(ws, 0, stdout_bytes=11, stderr_bytes=4)

    out, err, result, queries = await run(attach)
    assert (out, err) == (b"hello world", b"warn")
    assert result.exit_code == 0 and result.error_message is None
    assert queries == ["", "stdout_offset=6&stderr_offset=4"]


@pytest.mark.parametrize(
    ("stated", "expected_out", "lost"),
    [
        ("stdout=0, stderr=0", b"hello world", False),  # replays from the start: skip what we had
        ("stdout=9, stderr=4", b"hello rld", True),  # resumes past a gap: said, not hidden
    ],
)
async def test_a_stated_resume_position_is_honoured(
    stated: str, expected_out: bytes, lost: bool
) -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        if nth == 0:
            await ws.accept()
            await ws.send_bytes(b"\x01hello ")
            await ws.send_bytes(b"\x02warn")
            await ws.close(1011)
            return
        await ws.accept(headers=[(b"x-boxlite-resume", stated.encode())])
        if stated.startswith("stdout=0"):  # ignores the offsets asked, replays everything
            await ws.send_bytes(b"\x01hello ")
            await ws.send_bytes(b"\x02warn")
            await ws.send_bytes(b"\x01world")
        else:
            await ws.send_bytes(b"\x01rld")
        await exit_frame(ws)

    out, err, result, _ = await run(attach)
    assert (out, err) == (expected_out, b"warn")
    assert (result.error_message is not None and "lost" in result.error_message) is lost


async def test_a_409_on_reattach_is_retried() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        if nth == 0:
            await ws.accept()
            await ws.send_bytes(b"\x01a")
            await ws.close(1011)
        elif nth == 1:
            await ws.send_denial_response(
                JSONResponse(
                    {
                        "error": {
                            "message": "already attached",
                            "type": "InvalidStateError",
                            "code": "invalid_state",
                        }
                    },
                    409,
                )
            )
        else:
            await ws.accept()
            await ws.send_bytes(b"\x01b")
            await exit_frame(ws)

    out, _, result, queries = await run(attach)
    assert out == b"ab" and result.exit_code == 0
    assert len(queries) == 3


async def test_lost_output_is_said_and_skipped() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        if nth == 0:
            await ws.send_bytes(b"\x01abc")
            await ws.close(1011)
            return
        await ws.send_text(
            json.dumps(
                {
                    "type": "error",
                    "code": "output_lost",
                    "message": "gone",
                    "stdout_lost": 5,
                    "stderr_lost": 0,
                }
            )
        )
        await ws.send_bytes(b"\x01xyz")
        await exit_frame(ws, 0, stdout_bytes=11, stderr_bytes=0)

    out, _, result, _ = await run(attach)
    assert out == b"abcxyz"
    assert result.error_message is not None and "5 bytes of stdout" in result.error_message


async def test_exit_totals_that_disagree_are_reported() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        await ws.send_bytes(b"\x01abc")
        await exit_frame(ws, 0, stdout_bytes=10, stderr_bytes=0)

    _, _, result, _ = await run(attach)
    assert result.error_message is not None and "10 bytes of stdout" in result.error_message


async def test_a_malformed_exit_frame_is_a_clear_error() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        await ws.send_text('{"type": "exit", "code": "zero"}')
        await ws.close(1000)

    with pytest.raises(InternalError) as caught:
        await run(attach)
    assert "malformed exit frame" in caught.value.message


async def test_a_finished_execution_that_cannot_be_reattached_ends_with_its_status() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        if nth == 0:
            await ws.accept()
            await ws.send_bytes(b"\x01partial")
            await ws.close(1011)
            return
        await ws.send_denial_response(
            JSONResponse(
                {"error": {"message": "execution not found", "type": "NotFoundError"}}, 404
            )
        )

    out, _, result, _ = await run(attach, status="completed")
    assert out == b"partial"
    assert result.exit_code == -1
    assert result.error_message is not None and "may be missing" in result.error_message


async def test_stdin_after_the_process_ended_is_invalid_state() -> None:
    async def attach(ws: WebSocket, nth: int) -> None:
        await ws.accept()
        await exit_frame(ws)

    queries: list[str] = []
    async with serve(ws_server(attach, queries)) as url:
        settings = RestSettings(url=url, api="0.10", path_prefix="", **FAST)
        async with RestRuntime(settings) as runtime:
            execution = await (await runtime.get("b1")).exec(ExecRequest(command="x"))
            await execution.wait()
            with pytest.raises(InvalidStateError):
                await execution.write_stdin(b"late")
            await execution.close_stdin()  # no error: idempotent, and the process is gone
