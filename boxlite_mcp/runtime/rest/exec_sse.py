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
``exit``, or ``stream_idle_timeout`` of silence) the pump reconnects with
``Last-Event-ID`` set to the id of the last complete event it handled, so the
server sends only what came after: nothing lost, nothing twice. A partial event
cut mid-way is never handled (SSE dispatches an event only at its blank line), so
its id is never acknowledged and the server sends it again. A server that sends
no ids cannot be resumed exactly; the pump then reconnects
without ``Last-Event-ID`` and logs that output may repeat or be missing.
If the server answers the reconnect with 404, it lost the execution (restarted,
reaped it): the execution fails with a NotFoundError saying so. Reconnecting
gives up after ``reconnect_seconds`` without progress.

Stdin: ``POST .../input`` with an ``application/octet-stream`` body;
``X-Close-Stdin: true`` on an empty body closes it. Signals and resize: POST
``.../signal`` and ``.../resize``; kill is SIGKILL through ``.../signal``.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import random
import time
from typing import Any

import httpx
from httpx_sse import EventSource

from ..errors import InternalError, NotFoundError, UnavailableError
from ..types import ExecResult
from .errors import display_url
from .execution import RestExecution

logger = logging.getLogger(__name__)

_DATA_PREFIX = '{"data":"'
#: After the exit event, how long to wait for the stream's end (keeps the connection).
_TAIL_SECONDS = 1.0


def decode_output(event: str, raw: str) -> bytes:
    """The bytes of a ``stdout``/``stderr`` event's data; InternalError if malformed."""
    if raw.startswith(_DATA_PREFIX) and raw.endswith('"}'):
        encoded = raw[len(_DATA_PREFIX) : -2]
        if '"' in encoded or "\\" in encoded:
            encoded = _data_field(event, raw)
    else:
        encoded = _data_field(event, raw)
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: 'data' is not valid base64"
        ) from None


def _data_field(event: str, raw: str) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: its data is not JSON "
            f"(expected {{\"data\": \"<base64>\"}}, got {raw[:80]!r})"
        ) from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise InternalError(
            f"the server sent a malformed SSE '{event}' event: no string 'data' field "
            f"(got {raw[:80]!r})"
        )
    encoded: str = value["data"]
    return encoded


def parse_exit(raw: str, error_text: str | None) -> ExecResult:
    """The result an ``exit`` event announces; InternalError if malformed."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
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


def parse_error(raw: str) -> str:
    """The message of an ``error`` event: plain text, or JSON with ``message``/``error``."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, dict):
        for key in ("message", "error"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return raw


class SseExecution(RestExecution):
    """0.9: one SSE stream per execution, resumed with ``Last-Event-ID``."""

    async def _pump(self) -> ExecResult:
        client = self._client
        settings = client.settings
        url = await self._url("output")
        timeouts = httpx.Timeout(
            settings.timeout, connect=settings.connect_timeout, read=settings.stream_idle_timeout
        )
        put = self._pipe.put
        last_id: str | None = None
        error_text: str | None = None
        connected = False
        attempt = 0
        drop_started: float | None = None

        result: ExecResult | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with client.stream(
                    "GET", url, headers=headers, timeouts=timeouts,
                    what=f"stream the output of execution {self._id}",
                ) as response, asyncio.timeout(None) as tail:
                    if "text/event-stream" not in response.headers.get("content-type", ""):
                        raise InternalError(
                            f"the server answered the output stream of execution {self._id} "
                            f"with {response.headers.get('content-type')!r}, "
                            "not text/event-stream"
                        )
                    connected = True
                    async for sse in EventSource(response).aiter_sse():
                        if result is not None:
                            continue  # after exit: only reading to the end of the stream
                        event = sse.event
                        if sse.id:
                            last_id = sse.id  # SSE carries the last id over to id-less events
                        if event == "stdout":
                            await put("stdout", decode_output(event, sse.data))
                        elif event == "stderr":
                            await put("stderr", decode_output(event, sse.data))
                        elif event == "exit":
                            result = parse_exit(sse.data, error_text)
                            await self._settle(result)
                            # Read on to the end, briefly, so the connection is reused.
                            tail.reschedule(asyncio.get_running_loop().time() + _TAIL_SECONDS)
                        elif event == "error":
                            error_text = parse_error(sse.data)
                        else:
                            continue  # keep-alive or unknown: ignored, not progress
                        attempt = 0
                        drop_started = None
                if result is not None:
                    return result
                if error_text is not None:
                    return ExecResult(exit_code=-1, error_message=error_text)
                cause = "the output stream ended before the exit event"
            except (TimeoutError, httpx.TransportError, UnavailableError) as exc:
                if result is not None:
                    return result
                if isinstance(exc, UnavailableError):
                    cause = exc.message
                else:
                    cause = f"the output stream broke ({type(exc).__name__})"
            except NotFoundError:
                if connected:
                    raise self._gone("the output stream dropped") from None
                raise

            now = time.monotonic()
            if drop_started is None:
                drop_started = now
            if now - drop_started > settings.reconnect_seconds:
                raise UnavailableError(
                    f"lost the output stream of execution {self._id} at "
                    f"{display_url(url)} and could not resume it within "
                    f"{settings.reconnect_seconds:g}s: {cause}"
                )
            if connected and last_id is None:
                logger.warning(
                    "execution %s: resuming an SSE stream without event ids; output may "
                    "repeat or be missing", self._id,
                )
            attempt += 1
            delay = min(settings.backoff_max, settings.backoff_initial * 2 ** (attempt - 1))
            logger.debug("execution %s: %s; resuming in %.2fs", self._id, cause, delay)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _send_stdin(self, data: bytes) -> None:
        await self._post_input(data, close=False)

    async def _send_eof(self) -> None:
        await self._post_input(b"", close=True)

    async def _post_input(self, data: bytes, *, close: bool) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if close:
            headers["X-Close-Stdin"] = "true"
        await self._client.request(
            "POST", await self._url("input"), content=data, headers=headers,
            what=f"write to the stdin of execution {self._id}",
        )
