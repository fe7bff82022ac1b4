"""0.9 executions: output over Server-Sent Events, stdin and control by POST.

``GET .../executions/{eid}/output`` (``Accept: text/event-stream``) carries:

- ``stdout`` / ``stderr``: data ``{"data": "<base64>"}``;
- ``exit``: data ``{"exit_code": N, "duration_ms": N, "error"?: "..."}``; the end;
- ``error``: a text message (or JSON with ``message``). If the stream then ends
  without ``exit``, the execution ended with that error (exit code -1);
- anything else (keep-alives, comments): ignored.

A malformed ``stdout``/``stderr``/``exit`` event fails the execution with an
InternalError saying what was wrong.

Resuming: when the connection drops (reset, cut, the stream ending before
``exit``, ``stream_idle_timeout`` of silence, or an event that began and did not
end within it) the pump reconnects with ``Last-Event-ID`` set to the id of the
last complete event it handled, so the server sends only what came after:
nothing lost, nothing twice. A partial event cut mid-way is never handled (an
event is dispatched only at its blank line), so its id is never acknowledged and
the server sends it again. A server that ignores ``Last-Event-ID`` and replays is
recognised by ids already seen; replayed events are skipped (see ``_Resume``).
A server whose events carry no ids cannot be resumed exactly: after a drop the
pump takes only the exit event and says in the result that later output was not
delivered, rather than risk delivering output twice.
If the server answers the reconnect with 404, it lost the execution (restarted,
reaped it): the execution fails with a NotFoundError saying so. Reconnecting
gives up after ``reconnect_seconds`` without progress (new output or the exit).
Events are read by ``sse.read_events``: size-capped, on bytes.

Stdin: ``POST .../input`` with an ``application/octet-stream`` body;
``X-Close-Stdin: true`` on an empty body closes it. Signals and resize: POST
``.../signal`` and ``.../resize``; kill is SIGKILL through ``.../signal``.
"""

from __future__ import annotations

# asyncio: the output pump is a task that outlives the exec call; its tail deadline moves.
import asyncio
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ..errors import (
    BoxliteError,
    BoxTimeoutError,
    InternalError,
    NotFoundError,
    UnavailableError,
)
from ..types import ExecResult, StreamName
from .execution import RestExecution
from .reconnect import Reconnect
from .sse import SseStalled, read_events

logger = logging.getLogger(__name__)

_DATA_PREFIX = b'{"data":"'
#: After the exit event, how long to wait for the stream's end (keeps the connection).
_TAIL_SECONDS = 1.0


_ID_LESS_LOSS = (
    "the output stream dropped and this server's events carry no ids to resume from: "
    "output written after the drop was not delivered (never twice)"
)
#: Event ids remembered to recognise a server replaying what was already delivered.
_RECENT_IDS = 4096


class _Resume:
    """What resuming needs: the last id, and enough memory to spot replayed events.

    A server that ignores ``Last-Event-ID`` and replays from the start (or from any
    recent point) sends ids already seen: from the first such id on, events are
    skipped until the last id delivered comes round again. Skipped events are not
    progress, so a server that replays and drops forever runs out the reconnect
    budget instead of repeating output.
    """

    __slots__ = ("catch_up", "delivered", "dropped", "exit_only", "first_id", "last_id", "recent")

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.first_id: str | None = None
        self.recent: dict[str, None] = {}
        self.catch_up: str | None = None
        self.delivered = False  # any output delivered
        self.exit_only = False  # resumed without ids: only the exit may still be taken
        self.dropped = False  # output discarded in exit-only mode

    def fresh(self, ident: str | None) -> bool:
        """Whether an output event with this own ``id`` (None: it had none) is new.

        Only output events are judged: servers may use positions as ids, so an exit
        or error event can carry the id of the output event before it.
        """
        if self.catch_up is not None:
            if ident == self.catch_up:
                self.catch_up = None
            return False
        if ident is None:
            return True
        if ident in self.recent or ident == self.first_id:
            if ident != self.last_id:
                self.catch_up = self.last_id
            return False
        self.recent[ident] = None
        if len(self.recent) > _RECENT_IDS:
            del self.recent[next(iter(self.recent))]
        if self.first_id is None:
            self.first_id = ident
        self.last_id = ident
        return True


def decode_output(event: str, raw: bytes) -> bytes:
    """The bytes of a ``stdout``/``stderr`` event's data; InternalError if malformed."""
    encoded: bytes | str
    if raw.startswith(_DATA_PREFIX) and raw.endswith(b'"}'):
        encoded = raw[len(_DATA_PREFIX) : -2]
        if b'"' in encoded or b"\\" in encoded:
            encoded = _data_field(event, raw)
    else:
        encoded = _data_field(event, raw)
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: 'data' is not valid base64"
        ) from None


def _data_field(event: str, raw: bytes) -> str:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: its data is not JSON "
            f'(expected {{"data": "<base64>"}}, got {raw[:80]!r})'
        ) from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: no string 'data' field "
            f"(got {raw[:80]!r})"
        )
    encoded: str = value["data"]
    return encoded


def parse_exit(raw: bytes, error_text: str | None) -> ExecResult:
    """The result an ``exit`` event announces; InternalError if malformed."""
    try:
        value: Any = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    code = value.get("exit_code") if isinstance(value, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        raise InternalError(
            "the server sent a malformed SSE 'exit' event: expected "
            f'{{"exit_code": <int>, ...}}, got {raw[:80]!r}'
        )
    duration = value.get("duration_ms")
    error = value.get("error")
    return ExecResult(
        exit_code=code,
        duration_ms=int(duration) if isinstance(duration, int | float) else None,
        error_message=error if isinstance(error, str) and error else error_text,
        timed_out=value.get("timed_out") is True,
    )


def parse_error(raw: bytes) -> str:
    """The message of an ``error`` event: plain text, or JSON with ``message``/``error``."""
    text = raw[:2000].decode("utf-8", "replace")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return text[:500]
    if isinstance(value, dict):
        for key in ("message", "error"):
            if isinstance(value.get(key), str):
                return str(value[key])[:500]
    return text[:500]


class SseExecution(RestExecution):
    """0.9: one SSE stream per execution, resumed with ``Last-Event-ID``."""

    async def _pump(self) -> ExecResult:
        client = self._client
        settings = client.settings
        url = await self._url("output")
        timeouts = httpx.Timeout(
            settings.timeout, connect=settings.connect_timeout, read=settings.stream_idle_timeout
        )
        put = self._pipe.put if self._start_offsets == (0, 0) else self._skipping_put()
        loop = asyncio.get_running_loop()
        resume = _Resume()
        error_text: str | None = None
        connected = False
        reconnect = Reconnect(
            settings,
            f"the output stream of execution {self._id}",
            url,
            "resume it",
        )

        result: ExecResult | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if resume.last_id is not None:
                headers["Last-Event-ID"] = resume.last_id
            elif connected and resume.delivered:
                resume.exit_only = True  # no id to resume from: never deliver output twice
            try:
                async with (
                    client.stream(
                        "GET",
                        url,
                        headers=headers,
                        timeouts=timeouts,
                        what=f"stream the output of execution {self._id}",
                    ) as response,
                    asyncio.timeout(None) as tail,
                ):
                    if "text/event-stream" not in response.headers.get("content-type", ""):
                        raise InternalError(
                            f"the server answered the output stream of execution {self._id} "
                            f"with {response.headers.get('content-type', 'no type')[:60]!r}, "
                            "not text/event-stream"
                        )
                    connected = True
                    async for sse in read_events(
                        response.aiter_raw(),
                        max_event_bytes=settings.sse_max_event_bytes,
                        stall_seconds=settings.stream_idle_timeout,
                    ):
                        if result is not None:
                            continue  # after exit: reading on to the end of the stream
                        event = sse.event
                        if event == "stdout" or event == "stderr":
                            if not resume.fresh(sse.id):
                                continue  # replayed by the server: not progress
                            if resume.exit_only:
                                resume.dropped = True
                                continue
                            data = decode_output(event, sse.data)
                            await put("stdout" if event == "stdout" else "stderr", data)
                            resume.delivered = True
                        elif event == "exit" or event == "error":
                            if sse.id is not None:
                                resume.last_id = sse.id  # ids may be positions: no replay test
                            if event == "error":
                                error_text = parse_error(sse.data)
                            else:
                                result = parse_exit(sse.data, error_text)
                                if resume.dropped and result.error_message is None:
                                    result.error_message = _ID_LESS_LOSS
                                await self._settle(result)
                                # Read on to the end, briefly, so the connection is reused.
                                tail.reschedule(loop.time() + _TAIL_SECONDS)
                        else:
                            continue  # keep-alive or unknown: ignored, not progress
                        reconnect.progressed()
                        self._drop_cause = None
                if result is not None:
                    return result
                if error_text is not None:
                    return ExecResult(exit_code=-1, error_message=error_text)
                cause = "the output stream ended before the exit event"
            except (
                TimeoutError,
                httpx.TransportError,
                UnavailableError,
                BoxTimeoutError,
                SseStalled,
            ) as exc:
                if result is not None:
                    return result
                if isinstance(exc, UnavailableError | BoxTimeoutError):
                    cause = exc.message
                elif isinstance(exc, SseStalled):
                    cause = str(exc)
                else:
                    cause = f"the output stream broke ({type(exc).__name__})"
            except NotFoundError:
                if result is not None:
                    return result
                if connected:
                    raise self._gone("the output stream dropped") from None
                raise
            except BoxliteError:
                if result is not None:
                    return result
                raise

            self._drop_cause = cause
            await reconnect.after_drop(cause)

    def _skipping_put(self) -> Callable[[StreamName, bytes], Awaitable[None]]:
        """A re-attach (``RestBox.attach``): 0.9 event ids are the server's own, not
        offsets, so the stream is read from the start (no ``Last-Event-ID``) and each
        stream's first bytes, up to its offset, are skipped."""
        skip = {"stdout": self._start_offsets[0], "stderr": self._start_offsets[1]}

        async def put(stream: StreamName, data: bytes) -> None:
            dropped = min(skip[stream], len(data))
            skip[stream] -= dropped
            await self._pipe.put(stream, data[dropped:])

        return put

    async def _send_stdin(self, data: bytes) -> None:
        await self._post_input(data, close=False)

    async def _send_eof(self) -> None:
        await self._post_input(b"", close=True)

    async def _post_input(self, data: bytes, *, close: bool) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if close:
            headers["X-Close-Stdin"] = "true"
        await self._client.request(
            "POST",
            await self._url("input"),
            content=data,
            headers=headers,
            what=f"write to the stdin of execution {self._id}",
        )
