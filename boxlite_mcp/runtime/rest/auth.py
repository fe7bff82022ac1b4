"""Bearer credentials: none, a 0.10 API key, or a 0.9 OAuth2 client-credentials token.

An ``Auth`` gives the ``Authorization`` header value for the next request.
``ClientCredentialsAuth`` exchanges the client id and secret for a token
(form-encoded ``grant_type=client_credentials``), caches it, and exchanges again
60 s before ``expires_in`` runs out, or at once after the server answered 401.
Secrets live in ``SecretStr`` and never reach a repr, a log line or an error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from pydantic import SecretStr

from .types import TokenResponse

#: Exchange the token again this long before it expires.
REFRESH_LEEWAY_SECONDS = 60.0

#: Posts the form to the token endpoint and returns the parsed answer.
TokenExchange = Callable[[dict[str, str]], Awaitable[TokenResponse]]


class Auth:
    """No credentials: no header."""

    async def authorization(self) -> str | None:
        return None

    def invalidate(self) -> bool:
        """Forget a cached token after a 401. True when a retry may now succeed."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ApiKeyAuth(Auth):
    """0.10: ``Authorization: Bearer <API key>`` on every request."""

    def __init__(self, api_key: SecretStr) -> None:
        self._header = SecretStr(f"Bearer {api_key.get_secret_value()}")

    async def authorization(self) -> str | None:
        return self._header.get_secret_value()


class ClientCredentialsAuth(Auth):
    """0.9: the OAuth2 client-credentials exchange, token cached until 60 s before expiry."""

    def __init__(
        self,
        client_id: str,
        client_secret: SecretStr,
        exchange: TokenExchange,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._exchange = exchange
        self._clock = clock
        self._header: SecretStr | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def _fresh(self) -> bool:
        deadline = self._expires_at - REFRESH_LEEWAY_SECONDS
        return self._header is not None and self._clock() < deadline

    async def authorization(self) -> str | None:
        if not self._fresh():
            async with self._lock:  # one exchange, however many requests wait for it
                if not self._fresh():
                    await self._refresh()
        assert self._header is not None
        return self._header.get_secret_value()

    async def _refresh(self) -> None:
        issued = self._clock()
        token = await self._exchange(
            {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(),
            }
        )
        self._header = SecretStr(f"Bearer {token.access_token}")
        self._expires_at = issued + token.expires_in

    def invalidate(self) -> bool:
        self._header = None
        return True

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(client_id={self._client_id!r}, client_secret='**********')"
