"""0.10 executions: stdin, output and control over one WebSocket attach.

``GET .../executions/{eid}/attach`` upgrades to a WebSocket.

Server → client: binary frames ``[channel][payload]`` with channel ``0x01``
(stdout) or ``0x02`` (stderr); text frames ``{"type":"exit","exit_code":N}`` (the
end, then a normal close) and ``{"type":"error","message":...}`` (not fatal: kept
as the result's ``error_message``); other frames are ignored.
Client → server: binary frames are stdin; text frames ``{"type":"stdin_eof"}``.
Signals and resize go out of band (``POST .../signal``, ``.../resize``); kill is
``DELETE .../executions/{eid}`` (the server answers the socket with an exit frame).

Re-attach and resume: the protocol this client relies on
--------------------------------------------------------
The upstream client loses output when the socket is cut before the exit frame.
This one re-attaches and resumes, as ``tools/boxlite_server/ws.py`` specifies:

1. **Offsets.** The client counts the payload bytes it has received per channel
   (channel byte excluded). Every re-attach carries them as query parameters,
   ``.../attach?stdout_offset=N&stderr_offset=M``, and the server resumes each
   channel exactly after them, in the original interleaving: the client appends
   what arrives, and every byte arrives once. A first attach sends no offsets
   (0: replay everything, as upstream servers do).
2. **Lost output is said, not hidden.** If output the client asked for was
   already discarded, the server's first frame is ``{"type":"error","code":
   "output_lost","stdout_lost":N,"stderr_lost":M}`` and streaming continues from
   the oldest byte kept; the client advances its offsets past the gap and the
   result's ``error_message`` says how much was lost.
3. **Exit totals.** The exit frame may carry ``stdout_bytes``/``stderr_bytes``;
   when they differ from what the client received, ``error_message`` says so.
4. **Single attach.** While the old socket is still registered, an attach gets
   409; the client retries with backoff.
5. **Stated resume position (optional).** A server may say in the upgrade answer
   where it resumes: ``X-Boxlite-Resume: stdout=N, stderr=M``. Earlier than the
   offsets asked (a server that replays from the start, as upstream ones do): the
   client skips what it already has. Later: the gap is reported as lost output.
   Without the header (upstream servers ignore the offsets and replay from the
   start, saying nothing), each channel's first bytes after the re-attach are
   held back and compared with the first bytes delivered (the first 64 KiB are
   kept): a replay repeats them and is skipped up to the offset; anything else,
   or output ending (exit, ``output_lost``) before that many bytes, is new and
   delivered. Nothing is delivered twice. The one ambiguity: new output that
   repeats the start exactly (``yes``) is taken for a replay; the exit totals
   then say that bytes are missing.

After a dropped socket the client reads ``GET .../executions/{eid}``: a 404 means
the server lost the execution (restart, reaping) and it fails with a NotFoundError
saying so; otherwise it re-attaches, whether the status is ``running`` or already
finished (a finished execution stays attachable for a while: remaining output,
then the exit frame). If it can no longer be attached (404 on the attach), the exit
status from that read ends it, with ``error_message`` saying output may be missing.
Re-attaching gives up after ``reconnect_seconds`` without progress. Stdin written
while the socket is down waits for the next attach; after a re-attach the client
repeats ``stdin_eof`` if it had closed stdin.
"""

from __future__ import annotations

# asyncio: attach pumps are tasks that outlive the exec call (no task group owns them).
import asyncio
import contextlib
import json
import logging
from typing import Any

import httpcore
import httpx
from wsproto.events import BytesMessage, TextMessage

from ..errors import (
    BoxTimeoutError,
    InternalError,
    InvalidStateError,
    NotFoundError,
    UnavailableError,
)
from ..types import ExecResult
from .errors import AttachConflictError
from .execution import SIGKILL, RestExecution
from .reconnect import Reconnect
from .types import ExecutionInfo
from .websocket import WebSocket, WebSocketClosed

logger = logging.getLogger(__name__)

_STDOUT, _STDERR = 1, 2
#: Upgrade-answer header in which a server states the offsets it resumes from.
RESUME_HEADER = "x-boxlite-resume"
_EOF_FRAME = '{"type":"stdin_eof"}'
#: Bytes kept per channel to recognise a replay from the start after a re-attach.
_HEAD_BYTES = 64 * 1024


class WsExecution(RestExecution):
    """0.10: one attach socket at a time, re-attached with replay after a drop."""

    _ws: WebSocket | None = None
    _pump_finished = False
    #: A connection opened while ``POST /exec`` was in flight, for the first attach.
    preconnect: asyncio.Task[httpcore.AsyncNetworkStream | None] | None = None

    def start(self, tasks: set[asyncio.Task[None]]) -> None:
        self._attach_changed = asyncio.Event()
        super().start(tasks)

    async def _pump(self) -> ExecResult:
        try:
            return await self._attach_loop()
        finally:
            self._ws = None
            self._pump_finished = True
            self._attach_changed.set()
            await discard_preconnect(self.preconnect)
            self.preconnect = None

    async def _take_preconnected(self) -> httpcore.AsyncNetworkStream | None:
        task, self.preconnect = self.preconnect, None
        return await task if task is not None else None

    async def _attach_loop(self) -> ExecResult:
        settings = self._client.settings
        url = await self._url("attach")
        # Payload bytes received; index 1: stdout, 2: stderr (a re-attach starts further on).
        self._offsets = [0, *self._start_offsets]
        self._lost = [0, 0, 0]
        self._head = [bytearray(), bytearray(), bytearray()]  # first bytes delivered
        self._error_text: str | None = None
        self._progress = False
        attached = False
        info: ExecutionInfo | None = None
        reconnect = Reconnect(
            settings,
            f"the attach socket of execution {self._id}",
            url,
            "re-attach",
        )

        while True:
            self._progress = False
            outcome: ExecResult | BaseException
            try:
                offsets = self._offsets
                params = (
                    f"?stdout_offset={offsets[_STDOUT]}&stderr_offset={offsets[_STDERR]}"
                    if offsets[_STDOUT] or offsets[_STDERR]
                    else ""
                )
                async with self._client.upgrades.websocket(
                    url + params,
                    what=f"attach to execution {self._id}",
                    stream=await self._take_preconnected(),
                ) as ws:
                    attached = True
                    try:
                        outcome = await self._read(ws)
                    except Exception as exc:
                        outcome = exc
                    finally:
                        if self._ws is ws:
                            self._ws = None
                            self._attach_changed.clear()
            except Exception as exc:
                outcome = exc
            if isinstance(outcome, ExecResult):
                return outcome
            if self._progress:
                reconnect.progressed()
                self._drop_cause = None

            if isinstance(outcome, WebSocketClosed):
                cause = f"the attach socket closed ({outcome.code}) before the exit frame"
            elif isinstance(outcome, AttachConflictError):
                cause = "the server still holds a previous attach (409)"
            elif isinstance(outcome, NotFoundError):
                if not attached:
                    raise outcome
                if self._killed:
                    return ExecResult(exit_code=-SIGKILL, error_message="killed")
                if info is not None and info.finished:
                    return _status_result(info)
                raise self._gone("its attach socket dropped") from None
            elif isinstance(outcome, UnavailableError | BoxTimeoutError):
                cause = outcome.message
            elif isinstance(outcome, httpx.TransportError | OSError):
                cause = f"the attach socket broke ({type(outcome).__name__})"
            else:
                raise outcome

            self._drop_cause = cause
            if attached:
                info = await self._probe(cause)
            await reconnect.after_drop(cause)

    async def _read(self, ws: WebSocket) -> ExecResult:
        """One attach: deliver what arrives after the offsets, until the exit frame."""
        if self._stdin_closed:
            await ws.send_text(_EOF_FRAME)
        self._ws = ws
        self._drop_cause = None  # attached: the stream is up again
        self._attach_changed.set()
        offsets = self._offsets
        header = ws.headers.get(RESUME_HEADER)
        skip = self._resume_gap(header)
        # Offsets asked but no stated position: the server may have honoured them or
        # replayed from the start (upstream ones do). Hold each channel's first bytes
        # until they show which: a replay repeats what was delivered first.
        held: list[bytearray | None] = [None, None, None]
        if not header:
            for channel in (_STDOUT, _STDERR):
                if offsets[channel]:
                    held[channel] = bytearray()
        while True:
            event = await ws.receive()
            if isinstance(event, BytesMessage):
                data = event.data
                channel = data[0] if data else 0
                if channel == _STDOUT or channel == _STDERR:
                    payload = bytes(data[1:])
                    hold = held[channel]
                    if hold is not None:
                        hold += payload
                        verdict = self._replayed(channel, hold)
                        if verdict is None:
                            continue  # not enough yet to tell
                        held[channel] = None
                        payload = bytes(hold)
                        if verdict:
                            skip[channel] = offsets[channel]
                    if skip[channel]:  # the server resumed earlier than asked: had these
                        dropped = min(skip[channel], len(payload))
                        skip[channel] -= dropped
                        payload = payload[dropped:]
                    if payload:
                        await self._deliver(channel, payload)
            elif isinstance(event, TextMessage):
                frame = _control(event.data)
                kind = frame.get("type")
                if kind == "exit" or (kind == "error" and frame.get("code") == "output_lost"):
                    # The server knows offsets, or output ends short of a replay:
                    # what is held is new output.
                    for channel in (_STDOUT, _STDERR):
                        hold, held[channel] = held[channel], None
                        if hold:
                            await self._deliver(channel, bytes(hold))
                if kind == "exit":
                    result = self._exit_result(frame)
                    await self._settle(result)  # before the close handshake
                    return result
                if kind == "error":
                    self._on_error_frame(frame)

    async def _deliver(self, channel: int, payload: bytes) -> None:
        self._offsets[channel] += len(payload)
        head = self._head[channel]
        if len(head) < _HEAD_BYTES:
            head += payload[: _HEAD_BYTES - len(head)]
        self._progress = True
        self._drop_cause = None
        await self._pipe.put("stdout" if channel == _STDOUT else "stderr", payload)

    def _replayed(self, channel: int, hold: bytearray) -> bool | None:
        """Whether held re-attach output is a replay from the start; None: cannot tell yet.

        A replay begins with the first bytes delivered (the first ``_HEAD_BYTES`` are
        kept to compare); anything else is output after the offsets asked.
        """
        head = self._head[channel]
        need = min(self._offsets[channel], len(head))
        if not need:
            return False  # nothing delivered to compare (offsets from lost output only)
        if hold[: min(need, len(hold))] != head[: min(need, len(hold))]:
            return False
        return True if len(hold) >= need else None

    def _resume_gap(self, header: str | None) -> list[int]:
        """Bytes to skip per channel, from the server's statement of where it resumed.

        ``X-Boxlite-Resume: stdout=N, stderr=M`` on the upgrade answer says from which
        offsets the server streams. Earlier than asked: the difference is skipped (had
        it). Later: a gap, counted as lost. No header: the offsets asked were honoured.
        """
        skip = [0, 0, 0]
        if not header:
            return skip
        stated = dict(part.strip().partition("=")[::2] for part in header.split(","))
        for channel, name in ((_STDOUT, "stdout"), (_STDERR, "stderr")):
            value = stated.get(name, "")
            if not value.isdigit():
                continue
            start = int(value)
            if start < self._offsets[channel]:
                skip[channel] = self._offsets[channel] - start
            elif start > self._offsets[channel]:
                self._lost[channel] += start - self._offsets[channel]
                self._offsets[channel] = start
                self._error_text = (
                    f"output was lost while the attach socket was down: "
                    f"{self._lost[_STDOUT]} bytes of stdout, {self._lost[_STDERR]} of stderr"
                )
        return skip

    def _on_error_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("code") == "output_lost":
            for channel, key in ((_STDOUT, "stdout_lost"), (_STDERR, "stderr_lost")):
                lost = frame.get(key)
                if isinstance(lost, int) and lost > 0:
                    self._offsets[channel] += lost
                    self._lost[channel] += lost
            self._error_text = (
                f"output was lost while the attach socket was down: "
                f"{self._lost[_STDOUT]} bytes of stdout, {self._lost[_STDERR]} of stderr"
            )
        else:
            self._error_text = str(frame.get("message") or "error")
        logger.info("execution %s: server: %s", self._id, self._error_text)

    def _exit_result(self, frame: dict[str, Any]) -> ExecResult:
        code = frame.get("exit_code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise InternalError(
                f"the server sent a malformed exit frame: no integer exit_code in {frame!r:.80}"
            )
        message = self._error_text or _str(frame.get("error_message"))
        totals = (frame.get("stdout_bytes"), frame.get("stderr_bytes"))
        if (
            all(isinstance(total, int) for total in totals)
            and (totals[0] != self._offsets[_STDOUT] or totals[1] != self._offsets[_STDERR])
            and not self._error_text
        ):
            message = (
                f"the server reports {totals[0]} bytes of stdout and {totals[1]} of stderr, "
                f"but {self._offsets[_STDOUT]} and {self._offsets[_STDERR]} arrived"
            )
        duration = frame.get("duration_ms")
        return ExecResult(
            exit_code=code,
            duration_ms=duration if isinstance(duration, int) else None,
            error_message=message,
        )

    async def _probe(self, cause: str) -> ExecutionInfo | None:
        """The server's view after a drop; a 404 means the execution is gone."""
        try:
            return await self._info()
        except NotFoundError:
            if self._killed:
                return ExecutionInfo(status="killed", exit_code=-SIGKILL)
            raise self._gone(cause) from None
        except UnavailableError:
            return None

    # -- stdin and control -----------------------------------------------------------

    async def _socket(self) -> WebSocket:
        """The current attach socket; waits through a re-attach."""
        while True:
            if self._ws is not None:
                return self._ws
            if self._pump_finished:
                raise InvalidStateError(f"execution {self._id} has exited; its stdin is closed")
            await self._attach_changed.wait()

    async def _send_frame(self, data: bytes | str) -> None:
        for _ in range(3):
            ws = await self._socket()
            try:
                if isinstance(data, bytes):
                    await ws.send_bytes(data)
                else:
                    await ws.send_text(data)
                return
            except WebSocketClosed:
                if self._ws is ws:  # the pump has not noticed yet: wait for it to
                    self._ws = None
                    self._attach_changed.clear()
        raise UnavailableError(f"could not write to the stdin of execution {self._id}")

    async def _send_stdin(self, data: bytes) -> None:
        await self._send_frame(data)

    async def _send_eof(self) -> None:
        await self._send_frame(_EOF_FRAME)

    async def _send_kill(self) -> None:
        await self._client.request("DELETE", await self._url(), what=f"kill execution {self._id}")


async def discard_preconnect(task: asyncio.Task[httpcore.AsyncNetworkStream | None] | None) -> None:
    """Close a pre-opened connection nobody will use."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        stream = await task
        if stream is not None:
            await stream.aclose()


def _control(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _status_result(info: ExecutionInfo) -> ExecResult:
    return ExecResult(
        exit_code=info.exit_code if info.exit_code is not None else -1,
        duration_ms=info.duration_ms,
        error_message=(
            info.error_message
            or "the attach socket dropped and the server no longer replays this execution's "
            "output: some output may be missing"
        ),
        timed_out=info.status == "timed_out",
    )
