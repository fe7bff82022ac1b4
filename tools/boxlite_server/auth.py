"""Who may call: 0.9 OAuth2 client credentials, 0.10 API key.

0.9 routes want ``Bearer <token>`` from ``POST /oauth/tokens`` when the server has
client credentials; 0.10 routes (and ``/v1/me``) want ``Bearer <api key>`` when
it has an API key. Without them, routes are open. Secrets are compared in
constant time and never logged.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from .config import Generation, ServerConfig

SCOPES = "boxes:read boxes:write boxes:exec images:read images:write runtime:admin"


@dataclass(slots=True)
class IssuedToken:
    client_id: str
    expires_at: float
    scope: str


class Authenticator:
    """Issues 0.9 tokens and checks bearers of both generations."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._tokens: dict[str, IssuedToken] = {}
        #: Tokens issued so far (tests check that clients refresh).
        self.tokens_issued = 0

    def required(self, generation: Generation) -> bool:
        if generation == "0.9":
            return self._config.client_id is not None
        return self._config.api_key is not None

    def issue(
        self, client_id: str, client_secret: str, scope: str | None
    ) -> tuple[str, IssuedToken] | None:
        """A bearer string and its record for valid client credentials, else None."""
        want_id = self._config.client_id
        want_secret = self._config.client_secret
        if want_id is None or want_secret is None:
            return None
        ok_id = hmac.compare_digest(client_id.encode(), want_id.encode())
        ok_secret = hmac.compare_digest(
            client_secret.encode(), want_secret.get_secret_value().encode()
        )
        if not (ok_id and ok_secret):
            return None
        self._prune()
        token = IssuedToken(
            client_id, time.monotonic() + self._config.token_ttl_seconds, scope or SCOPES
        )
        self.tokens_issued += 1
        bearer = "blt_" + secrets.token_urlsafe(32)
        self._tokens[bearer] = token
        return bearer, token

    def check(self, generation: Generation, authorization: str | None) -> str | None:
        """None when the caller may proceed, else why not (for a 401 message)."""
        if not self.required(generation):
            return None
        if not authorization or not authorization.lower().startswith("bearer "):
            return "missing bearer token: send Authorization: Bearer <token>"
        bearer = authorization[7:].strip()
        if generation == "0.10":
            key = self._config.api_key
            assert key is not None
            if hmac.compare_digest(bearer.encode(), key.get_secret_value().encode()):
                return None
            return "invalid API key"
        token = self._tokens.get(bearer)
        if token is None:
            return "invalid access token: get one from POST /oauth/tokens"
        if token.expires_at <= time.monotonic():
            del self._tokens[bearer]
            return "access token expired: get a new one from POST /oauth/tokens"
        return None

    def expire_all(self) -> None:
        """Make every issued token expired (tests of client refresh)."""
        for token in self._tokens.values():
            token.expires_at = 0.0

    def _prune(self) -> None:
        now = time.monotonic()
        for secret in [s for s, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[secret]
