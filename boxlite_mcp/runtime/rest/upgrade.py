"""Exec attaches over WebSocket: the RFC 6455 upgrade, authenticated like any request.

An attach needs a connection of its own (the upgrade takes it over). It may run
on one opened ahead of time (``open_stream``, while ``POST /exec`` is in flight),
else through the pooled client with its retries. Either way the server must
prove it read the key (``Sec-WebSocket-Accept``); a 409 means someone else is
attached.
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
from .netstream import AsyncioBackend
from .urls import origin_of
from .websocket import WebSocket, accept_for

if TYPE_CHECKING:
    from .client import RestClient

logger = logging.getLogger(__name__)


async def head_of(response: httpcore.Response) -> bytes:
    """At most ERROR_BODY_BYTES of an httpcore answer's body (for an error message)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_stream():
        chunks.append(chunk)
        total += len(chunk)
        if total >= ERROR_BODY_BYTES:
            break
    return b"".join(chunks)[:ERROR_BODY_BYTES]


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
                network, answer_headers = upgraded
                socket = WebSocket(
                    network,
                    ping_interval=self._client.settings.ws_ping_interval,
                    max_message_bytes=self._client.settings.ws_max_message_bytes,
                    headers=answer_headers,
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
    ) -> tuple[httpcore.AsyncNetworkStream, dict[str, str]] | None:
        """The upgrade request on a pre-opened connection: the upgraded stream and the
        answer's headers; None if that connection failed."""
        target = origin_of(url)
        origin = httpcore.Origin(
            target.raw_scheme,
            target.raw_host,
            target.port or (443 if target.scheme == "https" else 80),
        )
        request_headers = [(b"Host", target.netloc), (b"User-Agent", b"boxlite-mcp")]
        request_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        if (value := await self._client.auth.authorization()) is not None:
            request_headers.append((b"Authorization", value.encode()))
        timeout = self._client.settings.timeout
        connection = httpcore.AsyncHTTP11Connection(origin=origin, stream=stream)
        try:
            async with asyncio.timeout(timeout):
                response = await connection.handle_async_request(
                    httpcore.Request(
                        "GET",
                        url,
                        headers=request_headers,
                        extensions={"timeout": {"read": timeout, "write": timeout}},
                    )
                )
        except (
            httpcore.NetworkError,
            httpcore.TimeoutException,
            httpcore.ProtocolError,
            TimeoutError,
        ) as exc:
            logger.debug("upgrade on a pre-opened connection failed: %r", exc)
            await connection.aclose()
            return None
        try:
            if response.status == 401 and self._client.auth.invalidate():
                return None  # let the pooled path fetch new credentials and retry
            await self._upgraded(response.status, lambda: head_of(response), what)
            answer_headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers
            }
            self._check_accept(answer_headers.get("sec-websocket-accept"), headers, what)
        except BaseException:
            await connection.aclose()
            raise
        network: httpcore.AsyncNetworkStream = response.extensions["network_stream"]
        return network, answer_headers

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
