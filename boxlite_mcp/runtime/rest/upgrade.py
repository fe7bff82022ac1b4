"""Exec attaches over WebSocket: the RFC 6455 upgrade, authenticated like any request.

An attach needs a connection of its own (the upgrade takes it over). It may run
on one opened ahead of time (``open_stream``, while ``POST /exec`` is in flight),
else through the pooled client with its retries. Either way the server must
prove it read the key (``Sec-WebSocket-Accept``); a 409 means someone else is
attached.

On a pre-opened connection the upgrade is written and its answer's head read
here rather than through httpcore's HTTP/1.1 connection: that layer (request and
response models, h11's state machine, locks that yield to the loop, trace hooks)
was a fifth of the client's CPU per exec round trip (``docs/benchmarks.md``),
for a request whose answer, when it succeeds, is a head and nothing else. Only
the success is handled here: a ``101`` with the right accept. Any other answer,
or a head this parser does not take, closes that connection and sends the
upgrade through the pooled client (httpx and h11, retries, every error mapped),
so refusals behave exactly as there. The head is written and read with
``http1.py``.
"""

from __future__ import annotations

# asyncio: one cheap deadline around the upgrade (anyio's scope costs more).
import asyncio
import base64
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpcore
import httpx

from ..errors import InternalError
from .bodies import ERROR_BODY_BYTES, read_capped
from .errors import AttachConflictError, error_from_status, parse_error_body
from .http1 import parse_head, read_head, request_head
from .netstream import AsyncioBackend
from .urls import origin_of
from .websocket import WebSocket, accept_for

if TYPE_CHECKING:
    from .client import RestClient

logger = logging.getLogger(__name__)


class Upgrades:
    """WebSocket upgrades through one ``RestClient`` (its settings, auth and pool)."""

    def __init__(self, client: RestClient) -> None:
        self._client = client
        # Plain asyncio streams, as in the pools (``netstream.py``).
        self._backend = AsyncioBackend(httpcore.AnyIOBackend())
        self._ssl_context: ssl.SSLContext | None = None

    async def open_stream(self, url: str) -> httpcore.AsyncNetworkStream | None:
        """A fresh connection to ``url``'s server, opened ahead of a WebSocket upgrade.

        An exec attach needs its own connection (the upgrade takes it over); opening
        it while ``POST /exec`` is in flight takes the TCP (and TLS) handshake off
        the exec's critical path, and leaves the pooled keep-alive connection to
        the REST calls. None when that cannot work (a proxy is configured) or the
        connect failed: the upgrade then goes through the pooled client, with its
        retries.
        """
        target = origin_of(url)
        transport_for_url = getattr(self._client.http, "_transport_for_url", None)
        default = getattr(self._client.http, "_transport", None)
        if transport_for_url is None or transport_for_url(target) is not default:
            return None
        port = target.port or (443 if target.scheme == "https" else 80)
        timeout = self._client.settings.connect_timeout
        try:
            stream = await self._backend.connect_tcp(target.host, port, timeout=timeout)
            if target.scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = httpx.create_ssl_context()
                stream = await stream.start_tls(
                    self._ssl_context, server_hostname=target.host, timeout=timeout
                )
        except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
            logger.debug("pre-connecting to %s failed: %r", target.host, exc)
            return None
        return stream

    @asynccontextmanager
    async def websocket(
        self, url: str, *, what: str = "", stream: httpcore.AsyncNetworkStream | None = None
    ) -> AsyncIterator[WebSocket]:
        """An authenticated WebSocket (RFC 6455 upgrade), on ``stream`` if given.

        A 409 (someone else attached) raises AttachConflictError, other refusals map
        as any answer does.
        """
        headers = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
        }
        if stream is not None:
            upgraded = await self._upgrade_on(stream, url, headers, what)
            if upgraded is not None:
                initial, answer_headers = upgraded
                socket = WebSocket(
                    stream,
                    ping_interval=self._client.settings.ws_ping_interval,
                    max_message_bytes=self._client.settings.ws_max_message_bytes,
                    headers=answer_headers,
                    initial=initial,
                )
                try:
                    yield socket
                finally:
                    await socket.aclose()
                return
        async with self._client.stream(
            "GET", url, headers=headers, ok_statuses=(409,), what=what
        ) as response:
            await self._upgraded(
                response.status_code,
                lambda: read_capped(response, ERROR_BODY_BYTES, what, truncate=True),
                what,
            )
            self._check_accept(response.headers.get("sec-websocket-accept"), headers, what)
            socket = WebSocket(
                response.extensions["network_stream"],
                ping_interval=self._client.settings.ws_ping_interval,
                max_message_bytes=self._client.settings.ws_max_message_bytes,
                headers={k.lower(): v for k, v in response.headers.items()},
            )
            try:
                yield socket
            finally:
                await socket.aclose()

    async def _upgrade_on(
        self,
        stream: httpcore.AsyncNetworkStream,
        url: str,
        headers: dict[str, str],
        what: str,
    ) -> tuple[bytes, dict[str, str]] | None:
        """The upgrade request on a pre-opened connection, written and read here (module
        docstring): what already arrived after the answer's head and the answer's
        headers; None when that connection cannot serve (the pooled path then asks
        again, with retries and full error handling)."""
        fields = {"User-Agent": "boxlite-mcp", **headers}
        if (value := await self._client.auth.authorization()) is not None:
            fields["Authorization"] = value
        request = request_head("GET", url, fields)
        if request is None:
            await stream.aclose()
            return None  # let httpx refuse it with its own error
        failures = (httpcore.NetworkError, httpcore.TimeoutException, TimeoutError, httpx.HTTPError)
        try:
            async with asyncio.timeout(self._client.settings.timeout):
                await stream.write(request)
                head, rest = await read_head(stream)
        except failures as exc:
            logger.debug("upgrade on a pre-opened connection failed: %r", exc)
            await stream.aclose()
            return None
        status, answer_headers = parse_head(head)
        if status != 101:
            # 401 (new credentials), 409 (still attached), errors: the pooled path
            # repeats the GET (harmless) and handles each as it always has.
            await stream.aclose()
            return None
        try:
            self._check_accept(answer_headers.get("sec-websocket-accept"), headers, what)
        except BaseException:
            await stream.aclose()
            raise
        return rest, answer_headers

    @staticmethod
    def _check_accept(accept: str | None, headers: dict[str, str], what: str) -> None:
        """RFC 6455 4.1: fail the connection unless the server proved it read the key."""
        if accept != accept_for(headers["Sec-WebSocket-Key"]):
            raise InternalError(
                f"{what}: the server's WebSocket handshake is invalid (wrong "
                "Sec-WebSocket-Accept); a proxy may be in the way"
            )

    async def _upgraded(self, status: int, read: Callable[[], Awaitable[bytes]], what: str) -> None:
        """Raise the right error unless the answer is ``101 Switching Protocols``."""
        if status == 101:
            return
        body = await read()
        if status == 409:
            message, _ = parse_error_body(body)
            raise AttachConflictError(
                f"{what}: another client is attached ({message or 'HTTP 409'})"
            )
        if status >= 400:
            raise error_from_status(status, body, what=what)
        raise InternalError(
            f"{what}: the server answered HTTP {status} instead of upgrading to a WebSocket"
        )
