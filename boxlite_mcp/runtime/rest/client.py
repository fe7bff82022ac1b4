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
for) and redirects are refused. WebSocket upgrades for exec attaches are in
``upgrade.py``.
"""

from __future__ import annotations

# asyncio: one cheap deadline per attempt (anyio's cancel scope costs more).
import asyncio
import json as json_module
import logging
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

import anyio
import httpx

from ..errors import BoxliteError, BoxTimeoutError, InternalError
from . import pool
from .auth import ApiKeyAuth, Auth, ClientCredentialsAuth
from .bodies import ERROR_BODY_BYTES, MAX_ANSWER_BYTES, Answer, read_capped
from .errors import (
    display_url,
    error_from_status,
    unavailable,
)
from .generation import detect_generation, exchange_credentials, routing_slot
from .http1 import Lane
from .settings import Generation, RestSettings
from .types import ServerConfig, TokenResponse
from .upgrade import Upgrades
from .urls import parsed_url

logger = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Content = bytes | AsyncIterable[bytes] | Callable[[], AsyncIterable[bytes]] | None


#: Headers on every request (no compression is asked for: answers are small).
_HEADERS = {"User-Agent": "boxlite-mcp", "Accept-Encoding": "identity"}
#: What the pooled client sends besides, for requests written over the lane.
_LANE_HEADERS = {"Accept": "*/*", "Connection": "keep-alive", **_HEADERS}


def _json_bytes(value: Any) -> bytes:
    """A JSON body as httpx encodes one (compact, UTF-8, no NaN)."""
    return json_module.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


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
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=(
                settings.max_connections
                if settings.max_keepalive_connections is None
                else settings.max_keepalive_connections
            ),
        )
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=limits,
            # Pools that stay cheap at 64 concurrent requests (``pool.py``); proxies
            # from the environment still get httpx's own transports.
            transport=transport if transport is not None else pool.ShardedTransport(limits),
            headers=_HEADERS,
        )
        self._generation: Generation | None = None
        self._auth: Auth = Auth()
        self._root = ""
        self._box_base = ""
        self._ready = False
        self._ready_lock = anyio.Lock()
        self._config: ServerConfig | None = None
        self._config_lock = anyio.Lock()
        #: WebSocket upgrades for exec attaches (``upgrade.py``).
        self.upgrades = Upgrades(self)
        #: A kept connection for hot-path requests (``http1.py``); none under a
        #: transport given by the caller (tests), which must see every request.
        self._lane = Lane(self.upgrades.open_stream) if transport is None else None

    def __repr__(self) -> str:
        return f"RestClient(url={self.settings.url!r}, generation={self._generation!r})"

    @property
    def auth(self) -> Auth:
        """How requests are authorised (known once the generation is resolved)."""
        return self._auth

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client (its transports decide whether a proxy is in the way)."""
        return self._http

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
        generation = s.preferred_generation() or await detect_generation(self)
        self._generation = generation
        if generation == "0.9":
            self._root = f"{s.url}/{(s.prefix or 'v1').strip('/')}"
            self._box_base = f"{self._root}/default"
            if s.oauth_credentials:
                assert s.client_id is not None and s.client_secret is not None
                root = self._root

                def exchange(form: dict[str, str]) -> Awaitable[TokenResponse]:
                    return exchange_credentials(self, root, form)

                self._auth = ClientCredentialsAuth(s.client_id, s.client_secret, exchange)
            elif s.api_key is not None:
                self._auth = ApiKeyAuth(s.api_key)
        else:
            self._root = f"{s.url}/v1"
            if s.api_key is not None:
                self._auth = ApiKeyAuth(s.api_key)
            slot = s.path_prefix
            if slot is None:
                slot = await routing_slot(self, self._root)
            slot = slot.strip("/")
            self._box_base = f"{self._root}/{slot}" if slot else self._root
        logger.info("BoxLite REST server %s speaks API %s", s.url, generation)

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
                    "GET",
                    f"{root}/config",
                    auth=False,
                    ok_statuses=(404,),
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
        lane: bool = False,
    ) -> Answer:
        """Send, retrying as the module docstring says; a read 2xx or a BoxliteError.

        Statuses in ``ok_statuses`` are returned (body read) instead of raised.
        ``lane``: a hot-path request (the exec ``POST``); its first attempt goes over
        the kept connection of ``http1.Lane`` when that is free.
        """
        answer = await self._send(
            method,
            url,
            json=json,
            data=data,
            content=content,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            idempotent=idempotent,
            auth=auth,
            timeouts=timeouts,
            what=what,
            stream=False,
            ok_statuses=ok_statuses,
            lane=lane,
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
            method,
            url,
            json=json,
            data=None,
            content=content,
            params=params,
            headers=headers,
            idempotency_key=False,
            idempotent=idempotent,
            auth=True,
            timeouts=timeouts,
            what=what,
            stream=True,
            ok_statuses=ok_statuses,
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
        lane: bool = False,
    ) -> httpx.Response | Answer:
        """One logical request: a streamed response (``stream``) or a read Answer."""
        key = str(uuid.uuid4()) if idempotency_key else None
        retry_unsafe = (
            idempotent if idempotent is not None else (method in _SAFE_METHODS or key is not None)
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
            lane_body: bytes | None = None
            plain = not (data or params or timeouts)
            if lane and attempt == 0 and self._lane is not None and plain:
                if json is not None:
                    lane_body = _json_bytes(json)
                    request_headers.setdefault("Content-Type", "application/json")
                elif isinstance(body, bytes) or body is None:
                    lane_body = body or b""
            failure: BaseException | None = None
            response: httpx.Response | None = None
            answer: Answer | None = None
            try:
                # The whole answer (headers, and the body unless streamed) within
                # ``timeout``: a server trickling bytes cannot hold a request forever.
                async with asyncio.timeout(self.settings.timeout):
                    if lane_body is not None and self._lane is not None:
                        response = await self._lane.send(
                            method,
                            url,
                            {**_LANE_HEADERS, **request_headers},
                            lane_body,
                            MAX_ANSWER_BYTES,
                        )
                    if response is None:
                        request = self._http.build_request(
                            method,
                            parsed_url(url),
                            json=json,
                            data=data,
                            content=body,
                            params=params,
                            headers=request_headers,
                            timeout=timeouts if timeouts is not None else httpx.USE_CLIENT_DEFAULT,
                        )
                        response = await self._dispatch(request)
                    status = response.status_code
                    self._check_answer(response, what, ok_statuses)
                    if not stream and (status < 300 or status in ok_statuses):
                        answer = Answer(
                            status,
                            response.headers,
                            await read_capped(response, MAX_ANSWER_BYTES, what),
                        )
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
            method,
            httpx.URL(url).path,
            cause,
            attempt,
            s.retries,
            delay,
        )
        await anyio.sleep(delay)

    async def aclose(self) -> None:
        if self._lane is not None:
            await self._lane.aclose()
        await self._http.aclose()
