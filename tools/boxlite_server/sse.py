"""0.9 output stream: ``GET {root}/boxes/{box_id}/executions/{exec_id}/output``.

Server-Sent Events, as rest-api-v0.9.yaml describes, plus exact resume:

* ``event: stdout`` / ``event: stderr``, ``data: {"data":"<base64>"}``. One event
  carries up to ``sse_event_max_bytes`` (64 KiB) of one stream; events come in the
  order the process wrote the output.
* ``event: exit``, ``data: {"exit_code":N,"duration_ms":N}`` (plus ``"error"``
  when the runtime reported one) once all output was sent; then the body ends.
* ``event: error``, ``data: <text>``: output the client asked for was already
  discarded (see the backlog cap in ws.py's docstring); the stream continues.
* Comment lines (``: keep-alive``) every ``keepalive_seconds`` while idle.

Every event has an ``id``: ``"<stdout bytes>-<stderr bytes>"``, the byte counts
of each stream delivered up to and including that event. A client that
reconnects with ``Last-Event-ID: <the last id it saw>`` gets exactly the output
after it, nothing twice. (``?stdout_offset=&stderr_offset=`` does the same when
no header is sent.) An id the output never reached is a 400.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from boxlite_mcp.runtime.errors import InvalidArgumentError

from .app import Op
from .backlog import STREAM_NAMES, Cursor, OffsetError
from .faults import StreamCutter
from .sessions import ExecSession
from .state import Call, ServerState
from .validation import Violation

log = logging.getLogger("boxlite_server.sse")

KEEPALIVE = b": keep-alive\n\n"


def parse_offsets(
    last_event_id: str | None, stdout: str | None, stderr: str | None
) -> tuple[int, int]:
    """Resume offsets from ``Last-Event-ID`` or the offset query parameters."""
    try:
        if last_event_id:
            out, err = last_event_id.strip().split("-", 1)
            return int(out), int(err)
        return int(stdout or 0), int(stderr or 0)
    except ValueError:
        raise InvalidArgumentError(
            "resume position must be Last-Event-ID '<stdout bytes>-<stderr bytes>' as sent "
            "in this stream's event ids, or integer stdout_offset/stderr_offset"
        ) from None


class SseOutput(Response):
    """Streams one session's output as SSE; cuts and resumes as documented."""

    streamed = True
    media_type = "text/event-stream"

    def __init__(
        self,
        state: ServerState,
        session: ExecSession,
        cursor: Cursor,
        cutter: StreamCutter,
        request_id: str,
        path: str,
    ) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", request_id.encode()),
        ]
        self._state = state
        self._session = session
        self._cursor = cursor
        self._cutter = cutter
        self._path = path
        self._client: object = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._client = scope.get("client")
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        backlog = self._session.backlog
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            backlog.wake()

        watcher = asyncio.get_running_loop().create_task(watch())
        token = backlog.attach(self._cursor)
        config = self._state.config
        try:
            completed = await self._stream(
                send,
                gone,
                config.sse_event_max_bytes,
                config.keepalive_seconds,
                token,
                config.strict,
            )
            backlog.detach(token)
            if completed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await gone.wait()  # cut or client gone: wait for the connection to close
        finally:
            backlog.detach(token)
            watcher.cancel()

    async def _emit(self, send: Send, event: bytes) -> bool:
        """Send one event, or part of it and cut; False when cut."""
        point = self._cutter.cut_point(len(event))
        if point is None:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            return True
        if point:
            await send({"type": "http.response.body", "body": event[:point], "more_body": True})
        self._state.transports.cut(self._client, flush=True)
        return False

    async def _stream(
        self,
        send: Send,
        gone: asyncio.Event,
        max_bytes: int,
        keepalive: float,
        token: int,
        strict: bool,
    ) -> bool:
        session, cursor, backlog = self._session, self._cursor, self._session.backlog
        while not gone.is_set():
            if any(cursor.lost):
                lost = cursor.lost
                text = (
                    f"output lost: {lost[0]} stdout and {lost[1]} stderr bytes were "
                    "discarded before this client received them (backlog cap)"
                )
                cursor.lost = [0, 0]
                if not await self._emit(send, f"event: error\ndata: {text}\n\n".encode()):
                    return False
                continue
            piece = backlog.read(cursor, max_bytes)
            if piece is not None:
                stream, data = piece
                event = b"".join(
                    (
                        b"id: ",
                        cursor.event_id.encode(),
                        b"\nevent: ",
                        STREAM_NAMES[stream].encode(),
                        b'\ndata: {"data":"',
                        binascii.b2a_base64(data, newline=False),
                        b'"}\n\n',
                    )
                )
                if not await self._emit(send, event):
                    return False
                backlog.note_sent(token, cursor)
                continue
            if backlog.at_end(cursor):
                payload = session.exit_payload()
                if session.error_message:
                    payload["error"] = session.error_message
                text = json.dumps(payload, separators=(",", ":"))
                if strict:
                    self._check_exit(payload)
                event = f"id: {cursor.event_id}\nevent: exit\ndata: {text}\n\n".encode()
                return await self._emit(send, event)
            before = backlog.version
            await backlog.wait(keepalive)
            if backlog.version == before and not gone.is_set():
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
        return False

    def _check_exit(self, payload: dict[str, object]) -> None:
        ok = isinstance(payload.get("exit_code"), int) and isinstance(
            payload.get("duration_ms"), int
        )
        if not ok:
            self._state.violations.record(
                Violation(
                    "stream",
                    "0.9",
                    "streamExecutionOutput",
                    "GET",
                    self._path,
                    f"exit event data {payload} lacks integer exit_code/duration_ms",
                )
            )


async def stream_output(call: Call) -> Response:
    session = call.state.executions.get(call.path("box_id"), call.path("exec_id"))
    offsets = parse_offsets(
        call.request.headers.get("last-event-id"),
        call.query("stdout_offset"),
        call.query("stderr_offset"),
    )
    try:
        cursor = session.backlog.open(offsets)
    except OffsetError as exc:
        raise InvalidArgumentError(f"cannot resume: {exc}") from None
    cutter = call.state.faults.stream("sse", "0.9", "streamExecutionOutput")
    return SseOutput(call.state, session, cursor, cutter, call.request_id, call.request.url.path)


OPS = [
    Op(
        "streamExecutionOutput",
        "GET",
        "/boxes/{box_id}/executions/{exec_id}/output",
        stream_output,
        generations=("0.9",),
    ),
]
