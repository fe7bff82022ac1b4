"""0.10 WebSocket attach: ``GET {root}/boxes/{box_id}/executions/{exec_id}/attach``.

The wire protocol, as this server speaks it (box-api-v0.10.yaml, plus resume):

Server → client
    * Binary frame: one channel byte, ``0x01`` stdout or ``0x02`` stderr, then the
      payload. Frames of both channels come in the order the process produced the
      output. A payload is at most ``max_frame_bytes`` bytes: the query parameter
      of that name if given (>= 1024), else ``ServerConfig.ws_frame_max_bytes``
      (128 KiB). A client whose WebSocket library caps message size below
      that + 1 (httpx-ws defaults to 64 KiB) raises its cap or passes
      ``max_frame_bytes``.
    * Text frame ``{"type":"exit","exit_code":N,"duration_ms":N,
      "stdout_bytes":N,"stderr_bytes":N}`` once the process has exited and every
      byte of output has been sent; then a normal close (1000). ``exit_code`` is
      negative when a signal killed the process. The byte totals let a client
      check it received everything. ``"error_message"`` is added when the runtime
      reported one.
    * Text frame ``{"type":"error","message":"..."}``: not fatal, the socket
      stays open (e.g. a rejected signal). When output a client asked for was
      already discarded, the first frame is ``{"type":"error","code":"output_lost",
      "message":...,"stdout_lost":N,"stderr_lost":N}`` and streaming continues
      from the oldest byte kept.
    * A WebSocket Ping every ``keepalive_seconds`` (5 s: the official SDK treats
      an attach with no frame for 10 s as dead and re-attaches after 15 s).

Client → server
    * Binary frame: bytes for the process's stdin.
    * ``{"type":"stdin_eof"}``: close stdin.
    * ``{"type":"resize","cols":C,"rows":R}``: resize the TTY.
    * ``{"type":"signal","sig":N}``: send a signal; only HUP, INT, QUIT, ABRT,
      USR1, USR2, TERM, WINCH (1, 2, 3, 6, 10, 12, 15, 28). Kill is
      ``DELETE .../executions/{exec_id}``.
    Bad control frames get an error frame; the socket stays open.

Re-attaching without losing or repeating output
    A socket can drop before the exit frame; the execution keeps running and its
    output is kept (see below). The client re-attaches with two query
    parameters, ``stdout_offset`` and ``stderr_offset``: the number of payload
    bytes of each channel it has already received (the sum of its binary frame
    payload lengths per channel, channel byte excluded). The server resumes each
    channel exactly after those bytes, in the original interleaving, so the
    client appends what arrives and gets every byte once. Omitted offsets are 0:
    a fresh attach replays everything kept, as upstream servers do. An offset
    beyond what the process has written is a 400 before the upgrade.

    Only one client is attached at a time: an attach while another is connected
    gets HTTP 409 (``InvalidStateError``) without upgrade. The server releases the
    slot as soon as it sees the old socket close; a client that gets 409 right
    after a drop retries with a short backoff. After the process exits the
    execution stays attachable (remaining output, then the exit frame) for
    ``completed_retention_seconds`` (300 s); after that an attach or
    ``GET .../executions/{exec_id}`` answers 404. After a DELETE (kill), status,
    signal and resize answer 404 at once, but an attach still gets the rest of
    the output and the exit frame (a client whose first attach raced its own
    kill learns the real exit code).

Output kept for replay
    Each execution keeps its most recent ``backlog_bytes`` (16 MiB) of output. The
    process is never allowed to run more than half of that ahead of the client
    (it blocks on its pipe, as with a slow reader), so everything the client may
    have missed in a drop is still there when it re-attaches within
    ``reconnect_grace_seconds`` (60 s). With no client attached for longer than
    that, the process runs freely and the oldest output is discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from boxlite_mcp.runtime.errors import BoxliteError
from boxlite_mcp.runtime.types import ExecRequest

from .backlog import Cursor, OffsetError
from .config import Generation
from .errors import WIRE_ERRORS, error_response, wire_error
from .execs import ALLOWED_SIGNALS_10
from .faults import StreamCutter
from .sessions import ExecSession
from .state import ServerState, new_request_id, new_ulid
from .validation import Violation

log = logging.getLogger("boxlite_server.ws")

CHANNELS = (b"\x01", b"\x02")


async def _deny(websocket: WebSocket, response: JSONResponse) -> None:
    await websocket.send_denial_response(response)


def _int_param(websocket: WebSocket, name: str, default: int) -> int:
    raw = websocket.query_params.get(name)
    if raw is None:
        return default
    value = int(raw)  # ValueError handled by the caller
    if value < 0:
        raise ValueError(name)
    return value


async def attach(websocket: WebSocket, state: ServerState, generation: Generation) -> None:
    """The attach endpoint (see the module docstring for the protocol)."""
    request_id = new_request_id()

    def deny(kind: str, message: str) -> JSONResponse:
        response = error_response(generation, WIRE_ERRORS[kind], message, request_id)
        response.headers["x-request-id"] = request_id
        return response

    reason = state.auth.check(generation, websocket.headers.get("authorization"))
    if reason is not None:
        await _deny(websocket, deny("AuthError", reason))
        return
    box_id = websocket.path_params["box_id"]
    exec_id = websocket.path_params["exec_id"]
    try:
        session = state.executions.get(box_id, exec_id, evicted=True)
    except BoxliteError as exc:
        response = error_response(generation, wire_error(exc), exc.message, request_id)
        await _deny(websocket, response)
        return
    try:
        offsets = (
            _int_param(websocket, "stdout_offset", 0),
            _int_param(websocket, "stderr_offset", 0),
        )
        frame_max = _int_param(websocket, "max_frame_bytes", state.config.ws_frame_max_bytes)
        if frame_max < 1024:
            raise ValueError("max_frame_bytes")
        cursor = session.backlog.open(offsets)
    except OffsetError as exc:
        await _deny(websocket, deny("InvalidArgumentError", f"cannot resume: {exc}"))
        return
    except ValueError:
        await _deny(
            websocket,
            deny(
                "InvalidArgumentError",
                "stdout_offset and stderr_offset must be integers >= 0, "
                "max_frame_bytes an integer >= 1024",
            ),
        )
        return
    if session.attached:
        await _deny(
            websocket,
            deny(
                "InvalidStateError",
                f"another client is attached to execution {exec_id}; "
                "only one attach at a time (retry shortly after a drop)",
            ),
        )
        return
    session.attached = True
    try:
        # Say where the stream resumes, so a re-attaching client need not guess
        # whether this server honours its offsets (upstream servers replay from 0).
        resume = f"stdout={offsets[0]}, stderr={offsets[1]}".encode()
        await websocket.accept(headers=[(b"x-boxlite-resume", resume)])
        cutter = state.faults.stream("ws", generation, "attachExecution")
        await _Attachment(websocket, state, session, cursor, cutter, frame_max).run()
    finally:
        session.attached = False


class _Attachment:
    """One attached client: a writer loop (output) and a reader task (stdin, control)."""

    def __init__(
        self,
        websocket: WebSocket,
        state: ServerState,
        session: ExecSession,
        cursor: Cursor,
        cutter: StreamCutter,
        frame_max: int,
        raw: bool = False,
    ) -> None:
        self.ws = websocket
        self.channels = (b"", b"") if raw else CHANNELS
        self.state = state
        self.session = session
        self.cursor = cursor
        self.cutter = cutter
        self.frame_max = frame_max
        self.gone = asyncio.Event()
        self.cut = False
        self.client = websocket.scope.get("client")
        self.path = websocket.url.path

    async def run(self) -> None:
        backlog = self.session.backlog
        token = backlog.attach(self.cursor)
        reader = asyncio.get_running_loop().create_task(self._read())
        try:
            finished = await self._write(token)
            if finished:
                with contextlib.suppress(Exception):
                    await self.ws.close(1000)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-send
        finally:
            backlog.detach(token)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _send(self, frame: bytes | str) -> bool:
        """Send one frame, or part of a binary one and cut; False when cut."""
        prefix = len(self.channels[0])
        size = len(frame) - prefix if isinstance(frame, bytes) else 0
        point = self.cutter.cut_point(size)
        if point is None:
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_text(frame)
            return True
        if point and isinstance(frame, bytes):
            await self.ws.send_bytes(frame[: point + prefix])
        self.cut = True
        self.state.transports.cut(self.client, flush=True)
        return False

    async def _write(self, token: int) -> bool:
        session, cursor, backlog = self.session, self.cursor, self.session.backlog
        while not self.gone.is_set():
            if any(cursor.lost):
                lost, cursor.lost = cursor.lost, [0, 0]
                message = {
                    "type": "error",
                    "code": "output_lost",
                    "message": f"{lost[0]} stdout and {lost[1]} stderr bytes were "
                    "discarded before this client received them",
                    "stdout_lost": lost[0],
                    "stderr_lost": lost[1],
                }
                if not await self._send(json.dumps(message)):
                    return False
                continue
            piece = backlog.read(cursor, self.frame_max)
            if piece is not None:
                stream, data = piece
                if not await self._send(self.channels[stream] + data):
                    return False
                backlog.note_sent(token, cursor)
                continue
            if backlog.at_end(cursor):
                frame = {
                    "type": "exit",
                    **session.exit_payload(),
                    "stdout_bytes": cursor.offsets[0],
                    "stderr_bytes": cursor.offsets[1],
                }
                if session.error_message:
                    frame["error_message"] = session.error_message
                if self.state.config.strict:
                    self._check_exit(frame)
                return await self._send(json.dumps(frame, separators=(",", ":")))
            await backlog.wait(None)
        return False

    def _check_exit(self, frame: dict[str, object]) -> None:
        if not isinstance(frame.get("exit_code"), int):
            self.state.violations.record(
                Violation(
                    "stream",
                    "0.10",
                    "attachExecution",
                    "GET",
                    self.path,
                    f"exit frame {frame} lacks an integer exit_code",
                )
            )

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    await self._control(
                        partial(self.session.execution.write_stdin, message["bytes"])
                    )
                elif message.get("text") is not None:
                    await self._on_text(message["text"])
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.gone.set()
            self.session.backlog.wake()

    async def _on_text(self, text: str) -> None:
        try:
            frame = json.loads(text)
            kind = frame.get("type") if isinstance(frame, dict) else None
        except ValueError:
            kind = None
            frame = {}
        execution = self.session.execution
        if kind == "stdin_eof":
            await self._control(execution.close_stdin)
        elif kind == "resize":
            cols, rows = frame.get("cols"), frame.get("rows")
            if isinstance(cols, int) and isinstance(rows, int) and cols >= 1 and rows >= 1:
                await self._control(lambda: execution.resize(cols, rows))
            else:
                await self._error("resize needs integer cols and rows >= 1")
        elif kind == "signal":
            sig = frame.get("sig")
            if isinstance(sig, int) and sig in ALLOWED_SIGNALS_10:
                await self._control(lambda: execution.signal(sig))
            else:
                await self._error(
                    f"signal {sig!r} is not allowed (HUP, INT, QUIT, ABRT, USR1, "
                    "USR2, TERM, WINCH); to kill, DELETE the execution"
                )
        else:
            await self._error(
                f"unknown control frame {text[:200]!r}: expected type stdin_eof, resize or signal"
            )

    async def _control(self, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except BoxliteError as exc:
            await self._error(exc.message)

    async def _error(self, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send_text(json.dumps({"type": "error", "message": message}))


async def exec_tty(websocket: WebSocket, state: ServerState, generation: Generation) -> None:
    """0.9 ``GET {root}/boxes/{box_id}/exec/tty``: an interactive TTY session.

    Query: ``command`` (default ``bash``), ``args`` (repeated), ``cols`` (80),
    ``rows`` (24). Frames as in rest-api-v0.9.yaml: raw PTY output as binary
    frames (no channel byte), stdin as binary frames, ``{"type":"resize",...}``
    (and ``stdin_eof``/``signal`` as on attach) as text, then
    ``{"type":"exit","exit_code":N}`` and a normal close. The accept carries the
    execution's id in ``X-Boxlite-Execution-Id``, so ``GET .../executions/{id}``,
    signal and resize work on it too.
    """
    request_id = new_request_id()
    reason = state.auth.check(generation, websocket.headers.get("authorization"))
    if reason is not None:
        await _deny(
            websocket, error_response(generation, WIRE_ERRORS["AuthError"], reason, request_id)
        )
        return
    if not state.config.tty:
        await _deny(
            websocket,
            error_response(
                generation,
                WIRE_ERRORS["UnsupportedError"],
                "TTY sessions are disabled on this server (capabilities.tty_enabled is false)",
                request_id,
            ),
        )
        return
    query = websocket.query_params
    try:
        cols, rows = _int_param(websocket, "cols", 80), _int_param(websocket, "rows", 24)
        if cols < 1 or rows < 1:
            raise ValueError("size")
        request = ExecRequest(
            command=query.get("command") or "bash", args=query.getlist("args"), tty=True
        )
        ref = await state.ids.runtime_ref(websocket.path_params["box_id"])
        box = await state.runtime.get(ref)
        execution = await box.exec(request)
    except ValueError:
        await _deny(
            websocket,
            error_response(
                generation,
                WIRE_ERRORS["InvalidArgumentError"],
                "cols and rows must be integers >= 1, command non-empty",
                request_id,
            ),
        )
        return
    except BoxliteError as exc:
        await _deny(websocket, error_response(generation, wire_error(exc), exc.message, request_id))
        return
    session = ExecSession(
        f"exec-{new_ulid()}", state.ids.wire(box.id), box.name, execution, True, state.config
    )
    state.executions.add(session)
    with contextlib.suppress(BoxliteError):
        await execution.resize(cols, rows)
    session.attached = True
    try:
        await websocket.accept(headers=[(b"x-boxlite-execution-id", session.id.encode())])
        cutter = state.faults.stream("ws", generation, "execTty")
        attachment = _Attachment(
            websocket,
            state,
            session,
            session.backlog.open(),
            cutter,
            state.config.ws_frame_max_bytes,
            raw=True,
        )
        await attachment.run()
    finally:
        session.attached = False


ROUTES: list[
    tuple[Generation, str, Callable[[WebSocket, ServerState, Generation], Awaitable[None]]]
] = [
    ("0.10", "/boxes/{box_id}/executions/{exec_id}/attach", attach),
    ("0.9", "/boxes/{box_id}/exec/tty", exec_tty),
]
