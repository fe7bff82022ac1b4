"""Every documented status and error type maps to its error kind, whatever the body shape."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    AuthError,
    BoxliteError,
    ImageError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    StoppedError,
    UnavailableError,
)
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings

from .conftest import FAST
from .serving import Recorder, serve

pytestmark = pytest.mark.anyio


def nested(kind: str, status: int = 0) -> bytes:
    return json.dumps(
        {"error": {"message": f"the {kind} message", "type": kind, "code": status}}
    ).encode()


def flat(kind: str, status: int = 0) -> bytes:
    return json.dumps({"message": f"the {kind} message", "type": kind, "code": status}).encode()


CASES: list[tuple[int, bytes, type[BoxliteError]]] = [
    (404, nested("NotFoundError", 404), NotFoundError),
    (404, flat("NotFoundError", 404), NotFoundError),
    (404, b"no such thing", NotFoundError),
    (409, nested("AlreadyExistsError", 409), AlreadyExistsError),
    (409, flat("AlreadyExistsError", 409), AlreadyExistsError),
    (409, nested("InvalidStateError", 409), InvalidStateError),
    (409, nested("StoppedError", 409), StoppedError),
    (409, nested("EngineError", 409), InternalError),
    (409, b"conflict", InternalError),
    (400, nested("InvalidArgumentError", 400), InvalidArgumentError),
    (400, nested("ValidationError", 400), InvalidArgumentError),
    (400, b"<html>bad</html>", InvalidArgumentError),
    (422, nested("ImageError", 422), ImageError),
    (422, flat("ImageError", 422), ImageError),
    (422, nested("ConfigError", 422), InvalidArgumentError),
    (422, b"unprocessable", InvalidArgumentError),
    (401, nested("UnauthorizedError", 401), AuthError),
    (403, flat("AuthError", 403), AuthError),
    (401, b"", AuthError),
    (500, nested("InternalError", 500), InternalError),
    (500, b"oops", InternalError),
    (418, nested("TeapotError", 418), InternalError),
    (502, b"", UnavailableError),
    (503, nested("EngineError", 503), UnavailableError),
    (504, b"gateway timeout", UnavailableError),
    # 0.10 bodies: a string code, sometimes no type; gin-style {"error": "text"}.
    (
        409,
        json.dumps({"error": {"message": "dup", "code": "already_exists"}}).encode(),
        AlreadyExistsError,
    ),
    (
        409,
        json.dumps(
            {
                "error": {
                    "message": "stopped",
                    "type": "StoppedError",
                    "code": "stopped",
                    "request_id": "r1",
                }
            }
        ).encode(),
        StoppedError,
    ),
    (
        422,
        json.dumps({"error": {"message": "pull", "code": "image_pull_failed"}}).encode(),
        ImageError,
    ),
    (404, json.dumps({"error": "execution not found"}).encode(), NotFoundError),
]


def answering(status: int, body: bytes) -> Recorder:
    async def metrics(request: Request) -> Response:
        kind = "application/json" if body.startswith(b"{") else "text/html"
        return Response(body, status, media_type=kind)

    return Recorder(Starlette(routes=[Route("/v1/default/metrics", metrics)]))


@pytest.mark.parametrize(("status", "body", "expected"), CASES)
async def test_status_and_type_map_to_the_documented_error(
    status: int, body: bytes, expected: type[BoxliteError]
) -> None:
    async with serve(answering(status, body)) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", retries=0)) as runtime:
            with pytest.raises(BoxliteError) as caught:
                await runtime.metrics()
    assert type(caught.value) is expected
    message = caught.value.message
    assert message and "Traceback" not in message
    if b"message" in body:
        assert "message" in message or "dup" in message or "pull" in message or "stopped" in message
    elif body.startswith(b"{"):
        assert "execution not found" in message


async def test_a_long_html_body_is_cut_short_in_the_message() -> None:
    body = b"<html>" + b"x" * 5000 + b"</html>"
    async with serve(answering(500, body)) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", retries=0)) as runtime:
            with pytest.raises(InternalError) as caught:
                await runtime.metrics()
    assert "HTTP 500" in caught.value.message
    assert len(caught.value.message) < 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connect_errors_name_the_url_but_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    settings = RestSettings(
        url=f"http://admin:hunter2@127.0.0.1:{port}",
        api="0.10",
        api_key=SecretStr("blk_live_SECRET"),
        path_prefix="",
        **FAST,
        retries=1,
    )
    async with RestRuntime(settings) as runtime:
        with pytest.raises(UnavailableError) as caught:
            await runtime.list()
    message = caught.value.message
    assert f"127.0.0.1:{port}/v1/boxes" in message
    assert "BOXLITE_REST_URL" in message
    for secret in ("hunter2", "blk_live_SECRET", "admin"):
        assert secret not in message
        assert secret not in caplog.text
        assert secret not in repr(settings)
        assert secret not in repr(runtime)
