"""The HTTP layer: one pooled ``httpx.AsyncClient``, URLs per generation, auth, retries.

URLs (``RestClient.url``):

- 0.9: ``{url}/{prefix}/default/...`` for boxes, ``{url}/{prefix}/...`` for
  ``config`` and ``oauth/tokens``; ``prefix`` defaults to ``v1``.
- 0.10: ``{url}/v1/{path_prefix}/...`` for boxes, the segment dropped when there is
  no routing slot; ``{url}/v1/...`` for ``config`` and ``me``.

Retries: a request that never reached the server (connect error, connect or pool
timeout) is retried whatever it is. A request that may have reached it (connection
cut mid-way, 502/503/504) is retried only when repeating it is harmless: GET, HEAD,
PUT, DELETE, or a POST that carries an ``Idempotency-Key``. The key is drawn once
per logical call and sent unchanged on every attempt, so a create retried after a
cut connection makes one box. Backoff is exponential with jitter and honours
``Retry-After``. A 401 makes OAuth2 credentials exchange a new token, once.

Bounds (a hostile or broken server can hold neither memory nor a caller): each
attempt's answer (headers, and the body unless streamed) must come within
``timeout``; bodies are capped (``bodies``); compressed answers (none are asked
for) and redirects are refused. WebSocket upgrades for exec attaches may run on a
connection opened ahead of time (``open_stream``), checked per RFC 6455.
"""

from __future__ import annotations

import asyncio
import base64
import json as json_module
import logging
import secrets
import ssl
import uuid
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
)
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpcore
import httpx

from ..errors import AuthError, BoxliteError, BoxTimeoutError, InternalError
from .auth import ApiKeyAuth, Auth, ClientCredentialsAuth
from .bodies import ERROR_BODY_BYTES, MAX_ANSWER_BYTES, Answer, read_capped
from .errors import (
    AttachConflictError,
    display_url,
    error_from_status,
    parse_error_body,
    unavailable,
)
from .settings import Generation, RestSettings
from .types import Principal, ServerConfig, TokenResponse, parse
from .websocket import WebSocket, accept_for

logger = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Content = bytes | AsyncIterable[bytes] | Callable[[], AsyncIterable[bytes]] | None

_CONFIG_KEYS_010 = frozenset({"max_boxes_per_path_prefix", "linux_capabilities_enabled"})
_CONFIG_KEYS_09 = frozenset({"max_boxes_per_prefix"})


async def _head_of(response: httpcore.Response) -> bytes:
    """At most ERROR_BODY_BYTES of an httpcore answer's body (for an error message)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_stream():
        chunks.append(chunk)
        total += len(chunk)
        if total >= ERROR_BODY_BYTES:
            break
    return b"".join(chunks)[:ERROR_BODY_BYTES]


def _failed(url: str, exc: BaseException, timeout: float) -> BoxliteError:
    """A transport failure or a missed deadline, as an error naming the URL only."""
    if isinstance(exc, TimeoutError):
        return BoxTimeoutError(
            f"the BoxLite server at {display_url(url)} did not answer within {timeout:g}s "
            "(BOXLITE_REST_TIMEOUT)"
        )
    return unavailable(url, exc)


class RestClient:
    """Everything the runtime sends goes through here. One instance per runtime."""

    def __init__(
        self, settings: RestSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_keepalive_connections,
            ),
            transport=transport,
            headers={"User-Agent": "boxlite-mcp", "Accept-Encoding": "identity"},
        )
        self._generation: Generation | None = None
        self._auth: Auth = Auth()
        self._root = ""
        self._box_base = ""
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._config: ServerConfig | None = None
        self._config_lock = asyncio.Lock()
        self._backend = httpcore.AnyIOBackend()
        self._ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"RestClient(url={self.settings.url!r}, generation={self._generation!r})"

    # -- readiness: generation, auth, URL bases --------------------------------------

    @property
    def auth_scheme(self) -> str:
        """How requests authenticate: ``oauth2-client-credentials``, ``api-key`` or ``none``."""
        if isinstance(self._auth, ClientCredentialsAuth):
            return "oauth2-client-credentials"
        return "api-key" if isinstance(self._auth, ApiKeyAuth) else "none"

    @property
    def generation(self) -> Generation:
        if self._generation is None:
            raise InternalError("the REST client is not ready yet (call ensure_ready first)")
        return self._generation

    async def ensure_ready(self) -> None:
        """Resolve the generation, credentials and URL bases, once."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await self._resolve()
                self._ready = True

    async def _resolve(self) -> None:
        s = self.settings
        generation = s.preferred_generation() or await self._detect_generation()
        self._generation = generation
        if generation == "0.9":
            self._root = f"{s.url}/{(s.prefix or 'v1').strip('/')}"
            self._box_base = f"{self._root}/default"
            if s.oauth_credentials:
                assert s.client_id is not None and s.client_secret is not None
                self._auth = ClientCredentialsAuth(s.client_id, s.client_secret, self._exchange)
            elif s.api_key is not None:
                self._auth = ApiKeyAuth(s.api_key)
        else:
            self._root = f"{s.url}/v1"
            if s.api_key is not None:
                self._auth = ApiKeyAuth(s.api_key)
            slot = s.path_prefix if s.path_prefix is not None else await self._routing_slot()
            slot = slot.strip("/")
            self._box_base = f"{self._root}/{slot}" if slot else self._root
        logger.info("BoxLite REST server %s speaks API %s", s.url, generation)

    async def _detect_generation(self) -> Generation:
        """Rules 2 to 4 of the settings module's docstring."""
        self._root = f"{self.settings.url}/v1"
        config = await self.config()
        caps = config.raw_capability_keys
        defaults = set(config.defaults or {})
        ten = bool(caps & _CONFIG_KEYS_010) or "auto_delete" in defaults
        nine = bool(caps & _CONFIG_KEYS_09) or "auto_remove" in defaults
        if ten != nine:
            return "0.10" if ten else "0.9"
        probe_auth = ApiKeyAuth(self.settings.api_key) if self.settings.api_key else Auth()
        headers = {}
        if (value := await probe_auth.authorization()) is not None:
            headers["Authorization"] = value
        try:
            response = await self._http.get(f"{self._root}/me", headers=headers)
        except httpx.TransportError as exc:
            raise unavailable(f"{self._root}/me", exc) from exc
        if response.status_code in (200, 401, 403):
            return "0.10"
        return "0.9"

    async def _routing_slot(self) -> str:
        """0.10: the routing slot from ``GET /v1/me``; none when the server has no /me."""
        response = await self.request(
            "GET", f"{self._root}/me", ok_statuses=(404, 405), what="read GET /v1/me"
        )
        if response.status_code != 200:
            return ""
        return parse(Principal, response.content, "read GET /v1/me").routing_slot

    async def _exchange(self, form: dict[str, str]) -> TokenResponse:
        """0.9: ``POST {root}/oauth/tokens`` with the client-credentials form."""
        response = await self.request(
            "POST", f"{self._root}/oauth/tokens", data=form, auth=False, idempotent=True,
            ok_statuses=(400, 401, 403), what="exchange the OAuth2 client credentials",
        )
        if response.status_code != 200:
            message, _ = parse_error_body(response.content)
            raise AuthError(
                f"the BoxLite server refused the OAuth2 client credentials "
                f"(HTTP {response.status_code}: {message or 'no details'}); "
                "check BOXLITE_REST_CLIENT_ID and BOXLITE_REST_CLIENT_SECRET."
            )
        try:
            return TokenResponse.model_validate_json(response.content)
        except ValueError:
            raise AuthError(
                "the BoxLite server answered the OAuth2 token exchange without a usable "
                "access_token; check that BOXLITE_REST_URL points at a BoxLite 0.9 server."
            ) from None

    # -- URLs ------------------------------------------------------------------------

    async def url(self, *segments: str, root: bool = False) -> str:
        """The URL of a box-scoped (or, with ``root``, version-root) resource.

        Segments are percent-encoded one by one, so ids and names cannot add path
        segments of their own.
        """
        await self.ensure_ready()
        base = self._root if root else self._box_base
        return base + "".join("/" + quote(segment, safe="") for segment in segments)

    # -- capabilities ----------------------------------------------------------------

    async def config(self) -> ServerConfig:
        """``GET /v1/config`` (no auth), read once and cached; an absent endpoint is empty."""
        if self._config is not None:
            return self._config
        async with self._config_lock:
            if self._config is None:
                root = self._root or f"{self.settings.url}/v1"
                response = await self.request(
                    "GET", f"{root}/config", auth=False, ok_statuses=(404,),
                    what="read the server configuration (GET /v1/config)",
                )
                try:
                    data: Any = (
                        json_module.loads(response.content) if response.status_code == 200 else {}
                    )
                except (ValueError, RecursionError):
                    data = {}
                self._config = ServerConfig.from_json(data)
        return self._config

    # -- requests --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        content: Content = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: bool = False,
        idempotent: bool | None = None,
        auth: bool = True,
        timeouts: httpx.Timeout | None = None,
        ok_statuses: Collection[int] = (),
        what: str = "",
    ) -> Answer:
        """Send, retrying as the module docstring says; a read 2xx or a BoxliteError.

        Statuses in ``ok_statuses`` are returned (body read) instead of raised.
        """
        answer = await self._send(
            method, url, json=json, data=data, content=content, params=params,
            headers=headers, idempotency_key=idempotency_key, idempotent=idempotent,
            auth=auth, timeouts=timeouts, what=what, stream=False, ok_statuses=ok_statuses,
        )
        assert isinstance(answer, Answer)
        return answer

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: Content = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeouts: httpx.Timeout | None = None,
        ok_statuses: Collection[int] = (),
        what: str = "",
    ) -> AsyncIterator[httpx.Response]:
        """Like ``request`` but the 2xx body is left to read as it arrives."""
        response = await self._send(
            method, url, json=json, data=None, content=content, params=params,
            headers=headers, idempotency_key=False, idempotent=idempotent, auth=True,
            timeouts=timeouts, what=what, stream=True, ok_statuses=ok_statuses,
        )
        assert isinstance(response, httpx.Response)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        data: Mapping[str, str] | None,
        content: Content,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        idempotency_key: bool,
        idempotent: bool | None,
        auth: bool,
        timeouts: httpx.Timeout | None,
        what: str,
        stream: bool,
        ok_statuses: Collection[int],
    ) -> httpx.Response | Answer:
        """One logical request: a streamed response (``stream``) or a read Answer."""
        key = str(uuid.uuid4()) if idempotency_key else None
        retry_unsafe = idempotent if idempotent is not None else (
            method in _SAFE_METHODS or key is not None
        )
        retries = self.settings.retries
        attempt = 0
        reauthorized = False
        while True:
            request_headers = dict(headers) if headers else {}
            if auth and (value := await self._auth.authorization()) is not None:
                request_headers["Authorization"] = value
            if key is not None:
                request_headers["Idempotency-Key"] = key
            body = content() if callable(content) else content
            request = self._http.build_request(
                method, url, json=json, data=data, content=body, params=params,
                headers=request_headers,
                timeout=timeouts if timeouts is not None else httpx.USE_CLIENT_DEFAULT,
            )
            failure: BaseException | None = None
            response: httpx.Response | None = None
            answer: Answer | None = None
            try:
                # The whole answer (headers, and the body unless streamed) within
                # ``timeout``: a server trickling bytes cannot hold a request forever.
                async with asyncio.timeout(self.settings.timeout):
                    response = await self._dispatch(request)
                    status = response.status_code
                    self._check_answer(response, what, ok_statuses)
                    if not stream and (status < 300 or status in ok_statuses):
                        answer = Answer(status, response.headers,
                                        await read_capped(response, MAX_ANSWER_BYTES, what))
            except _NOT_SENT as exc:
                failure = exc
            except (httpx.TransportError, TimeoutError) as exc:
                if response is not None:
                    await response.aclose()
                if not retry_unsafe:
                    raise _failed(url, exc, self.settings.timeout) from exc
                failure = exc
            except BaseException:
                if response is not None:
                    await response.aclose()
                raise
            if failure is not None:
                if attempt >= retries:
                    raise _failed(url, failure, self.settings.timeout) from failure
                attempt += 1
                await self._backoff(attempt, None, method, url, type(failure).__name__)
                continue

            assert response is not None
            if answer is not None:
                return answer
            status = response.status_code
            if status < 300 or status in ok_statuses:
                return response  # streamed
            if status in _RETRY_STATUSES and retry_unsafe and attempt < retries:
                retry_after = response.headers.get("Retry-After")
                await response.aclose()
                attempt += 1
                await self._backoff(attempt, retry_after, method, url, f"HTTP {status}")
                continue
            if status == 401 and auth and not reauthorized and self._auth.invalidate():
                await response.aclose()
                reauthorized = True
                continue
            try:
                async with asyncio.timeout(self.settings.timeout):
                    error_body = await read_capped(response, ERROR_BODY_BYTES, what, truncate=True)
            except (httpx.TransportError, TimeoutError):
                error_body = b""
            finally:
                await response.aclose()
            raise error_from_status(status, error_body, what=what)

    @staticmethod
    def _check_answer(response: httpx.Response, what: str, ok_statuses: Collection[int]) -> None:
        """Refuse answers this client cannot take safely: redirects, compressed bodies."""
        status = response.status_code
        prefix = f"{what}: " if what else ""
        if 300 <= status < 400 and status not in ok_statuses:
            location = response.headers.get("location", "elsewhere")
            raise InternalError(
                f"{prefix}the server redirected the request (HTTP {status}) to "
                f"{location[:200]}; set BOXLITE_REST_URL to the address it should use"
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise InternalError(
                f"{prefix}the server compressed its answer ({encoding[:40]}) although the "
                "client asked for none; a proxy may be rewriting answers"
            )

    async def _dispatch(self, request: httpx.Request) -> httpx.Response:
        """Hand the request to the pooled transport, body unread.

        The exec hot path sends two requests per command; ``AsyncClient.send`` adds
        redirect, cookie and hook handling this API never needs (~0.1 ms each).
        Going straight to the client's transport (proxies from the environment
        included) skips that; it falls back to ``send`` if httpx changes.
        """
        transport_for_url = getattr(self._http, "_transport_for_url", None)
        if transport_for_url is None:
            return await self._http.send(request, stream=True)
        transport: httpx.AsyncBaseTransport = transport_for_url(request.url)
        response = await transport.handle_async_request(request)
        response.request = request
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %d", request.method, request.url.path, response.status_code)
        return response

    async def _backoff(
        self, attempt: int, retry_after: str | None, method: str, url: str, cause: str
    ) -> None:
        s = self.settings
        delay = s.backoff(attempt)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), s.backoff_max))
        logger.debug(
            "retrying %s %s after %s (attempt %d of %d, in %.2fs)",
            method, httpx.URL(url).path, cause, attempt, s.retries, delay,
        )
        await asyncio.sleep(delay)

    # -- WebSocket -------------------------------------------------------------------

    async def open_stream(self, url: str) -> httpcore.AsyncNetworkStream | None:
        """A fresh connection to ``url``'s server, opened ahead of a WebSocket upgrade.

        An exec attach needs its own connection (the upgrade takes it over); opening
        it while ``POST /exec`` is in flight takes the TCP (and TLS) handshake off
        the exec's critical path, and leaves the pooled keep-alive connection to
        the REST calls. None when that cannot work (a proxy is configured) or the
        connect failed: the upgrade then goes through the pooled client, with its
        retries.
        """
        target = httpx.URL(url)
        transport_for_url = getattr(self._http, "_transport_for_url", None)
        default = getattr(self._http, "_transport", None)
        if transport_for_url is None or transport_for_url(target) is not default:
            return None
        port = target.port or (443 if target.scheme == "https" else 80)
        timeout = self.settings.connect_timeout
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
                socket = WebSocket(network, ping_interval=self.settings.ws_ping_interval,
                                   max_message_bytes=self.settings.ws_max_message_bytes,
                                   headers=answer_headers)
                try:
                    yield socket
                finally:
                    await socket.aclose()
                return
        async with self.stream(
            "GET", url, headers=headers, ok_statuses=(409,), what=what
        ) as response:
            await self._upgraded(
                response.status_code,
                lambda: read_capped(response, ERROR_BODY_BYTES, what, truncate=True), what,
            )
            self._check_accept(response.headers.get("sec-websocket-accept"), headers, what)
            socket = WebSocket(
                response.extensions["network_stream"],
                ping_interval=self.settings.ws_ping_interval,
                max_message_bytes=self.settings.ws_max_message_bytes,
                headers={k.lower(): v for k, v in response.headers.items()},
            )
            try:
                yield socket
            finally:
                await socket.aclose()

    async def _upgrade_on(
        self, stream: httpcore.AsyncNetworkStream, url: str, headers: dict[str, str],
        what: str,
    ) -> tuple[httpcore.AsyncNetworkStream, dict[str, str]] | None:
        """The upgrade request on a pre-opened connection: the upgraded stream and the
        answer's headers; None if that connection failed."""
        target = httpx.URL(url)
        origin = httpcore.Origin(target.raw_scheme, target.raw_host, target.port or (
            443 if target.scheme == "https" else 80))
        request_headers = [(b"Host", target.netloc), (b"User-Agent", b"boxlite-mcp")]
        request_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        if (value := await self._auth.authorization()) is not None:
            request_headers.append((b"Authorization", value.encode()))
        timeout = self.settings.timeout
        connection = httpcore.AsyncHTTP11Connection(origin=origin, stream=stream)
        try:
            async with asyncio.timeout(timeout):
                response = await connection.handle_async_request(httpcore.Request(
                    "GET", url, headers=request_headers,
                    extensions={"timeout": {"read": timeout, "write": timeout}},
                ))
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError,
                TimeoutError) as exc:
            logger.debug("upgrade on a pre-opened connection failed: %r", exc)
            await connection.aclose()
            return None
        try:
            if response.status == 401 and self._auth.invalidate():
                return None  # let the pooled path fetch new credentials and retry
            await self._upgraded(response.status, lambda: _head_of(response), what)
            answer_headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                              for k, v in response.headers}
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

    async def _upgraded(
        self, status: int, read: Callable[[], Awaitable[bytes]], what: str
    ) -> None:
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

    async def aclose(self) -> None:
        await self._http.aclose()
