"""0.9 output streams as a server might really send them: odd, broken or hostile."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from boxlite_mcp.runtime.errors import InternalError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import ExecRequest, ExecResult

from .conftest import FAST, wire_box
from .serving import serve

pytestmark = pytest.mark.anyio

BOX = wire_box("01HJK4TNRPQSXYZ8WM6NCVT9R5")


def data(payload: bytes) -> str:
    return json.dumps({"data": base64.b64encode(payload).decode()})


def sse_server(stream: str, content_type: str = "text/event-stream") -> Starlette:
    """A 0.9 server whose only execution streams exactly ``stream``."""

    async def get_box(request: Request) -> Response:
        return JSONResponse(BOX)

    async def start_exec(request: Request) -> Response:
        return JSONResponse({"execution_id": "e1"}, 201)

    async def output(request: Request) -> Response:
        return Response(stream.encode(), media_type=content_type)

    root = "/v1/default/boxes/{box}"
    return Starlette(
        routes=[
            Route(root, get_box),
            Route(root + "/exec", start_exec, methods=["POST"]),
            Route(root + "/executions/{eid}/output", output),
        ]
    )


async def run(stream: str, content_type: str = "text/event-stream") -> tuple[bytes, ExecResult]:
    async with serve(sse_server(stream, content_type)) as url:
        settings = RestSettings(url=url, api="0.9", **FAST)
        async with RestRuntime(settings) as runtime:
            box = await runtime.get(BOX["box_id"])
            execution = await box.exec(ExecRequest(command="x"))
            result = await execution.wait()
            out = b"".join([chunk.data async for chunk in execution.output()])
    return out, result


async def test_keep_alives_comments_and_unknown_events_are_ignored() -> None:
    stream = (
        ": comment\n\n"
        "event: ping\ndata: {}\n\n"
        f"event: stdout\ndata: {data(b'a')}\n\n"
        "event: progress\ndata: whatever\n\n"
        "data: no event name\n\n"
        "retry: 1000\n\n"
        f"event: stdout\r\ndata: {data(b'b')}\r\n\r\n"
        'event: exit\ndata: {"exit_code": 4, "duration_ms": 12}\n\n'
    )
    out, result = await run(stream)
    assert out == b"ab"
    assert result.exit_code == 4 and result.duration_ms == 12 and result.error_message is None


async def test_multi_line_data_and_the_exit_error_field() -> None:
    stream = (
        f'event: stderr\ndata: {{"data":\ndata: "{base64.b64encode(b"e").decode()}"}}\n\n'
        'event: exit\ndata: {"exit_code": -1, "duration_ms": 3, "error": "runner lost"}\n\n'
    )
    out, result = await run(stream)
    assert out == b"e"
    assert result.exit_code == -1 and result.error_message == "runner lost"


async def test_an_error_event_then_the_end_ends_the_execution() -> None:
    stream = f"event: stdout\ndata: {data(b'x')}\n\nevent: error\ndata: box crashed\n\n"
    out, result = await run(stream)
    assert out == b"x"
    assert result.exit_code == -1 and result.error_message == "box crashed"


async def test_an_error_event_before_exit_becomes_the_error_message() -> None:
    stream = (
        'event: error\ndata: {"message": "3 bytes of stdout were lost"}\n\n'
        'event: exit\ndata: {"exit_code": 0}\n\n'
    )
    _, result = await run(stream)
    assert result.exit_code == 0 and result.error_message == "3 bytes of stdout were lost"


@pytest.mark.parametrize(
    ("stream", "complaint"),
    [
        ('event: stdout\ndata: {"data": "@@not base64@@"}\n\n', "not valid base64"),
        ("event: stdout\ndata: hello\n\n", "not JSON"),
        ('event: stderr\ndata: {"bytes": "aGk="}\n\n', "no string 'data'"),
        ('event: exit\ndata: {"code": 0}\n\n', "malformed SSE 'exit'"),
        ("event: exit\ndata: done\n\n", "malformed SSE 'exit'"),
    ],
)
async def test_malformed_events_are_a_clear_error(stream: str, complaint: str) -> None:
    with pytest.raises(InternalError) as caught:
        await run(stream)
    assert complaint in caught.value.message
    assert "Traceback" not in caught.value.message


async def test_a_stream_that_is_not_event_stream_is_refused() -> None:
    with pytest.raises(InternalError) as caught:
        await run('{"exit_code": 0}', content_type="application/json")
    assert "not text/event-stream" in caught.value.message
