"""Connection settings for a BoxLite REST server, from the official SDKs' environment names.

Which API generation a server speaks (``BOXLITE_REST_API``: ``0.9``, ``0.10`` or
``auto``, the default) decides URLs, auth and the exec stream. ``auto`` resolves
once, on first use, in this order; the first rule that decides wins:

1. Credentials: only an API key (``BOXLITE_API_KEY``) or only a 0.10 path prefix
   means 0.10; only OAuth2 client credentials (``BOXLITE_REST_CLIENT_ID`` and
   ``BOXLITE_REST_CLIENT_SECRET``) or only a 0.9 prefix means 0.9.
2. The shape of ``GET /v1/config`` (no auth in either generation): keys only 0.10
   servers send (``capabilities.max_boxes_per_path_prefix``,
   ``capabilities.linux_capabilities_enabled``, ``defaults.auto_delete``) mean 0.10;
   keys only 0.9 servers send (``capabilities.max_boxes_per_prefix``,
   ``defaults.auto_remove``) mean 0.9. Both or neither: undecided.
3. ``GET /v1/me`` (0.10 only): a 200 or a 401/403 means the endpoint exists, so
   0.10; a 404/405 means 0.9.
4. Otherwise 0.9, the primary contract.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..errors import InvalidArgumentError

logger = logging.getLogger(__name__)

ApiChoice = Literal["auto", "0.9", "0.10"]
Generation = Literal["0.9", "0.10"]

#: The BoxLite server's URL (the official SDKs' name; ``--url`` overrides it).
URL_ENV = "BOXLITE_REST_URL"
#: Environment variable → field. The first six are the official SDKs' names.
ENV_NAMES: dict[str, str] = {
    URL_ENV: "url",
    "BOXLITE_API_KEY": "api_key",
    "BOXLITE_REST_PATH_PREFIX": "path_prefix",
    "BOXLITE_REST_CLIENT_ID": "client_id",
    "BOXLITE_REST_CLIENT_SECRET": "client_secret",
    "BOXLITE_REST_PREFIX": "prefix",
    "BOXLITE_REST_API": "api",
    "BOXLITE_REST_CONNECT_TIMEOUT": "connect_timeout",
    "BOXLITE_REST_TIMEOUT": "timeout",
    "BOXLITE_REST_STREAM_IDLE_TIMEOUT": "stream_idle_timeout",
    "BOXLITE_REST_RETRIES": "retries",
    "BOXLITE_REST_RECONNECT_SECONDS": "reconnect_seconds",
}


class RestSettings(BaseModel):
    """Where the server is, how to authenticate, and how patient to be.

    Secrets are ``SecretStr``: they never show in reprs, logs or errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    api: ApiChoice = "auto"

    # 0.10: API key bearer; routing slot (else from GET /v1/me; empty = none).
    api_key: SecretStr | None = None
    path_prefix: str | None = None

    # 0.9: OAuth2 client credentials; URL prefix segment (default "v1").
    client_id: str | None = None
    client_secret: SecretStr | None = None
    prefix: str | None = None

    # Timeouts (seconds). ``timeout`` bounds each read/write of a plain request;
    # ``stream_idle_timeout`` is how long an exec stream may stay silent before the
    # client treats the connection as dead and resumes it (None: wait forever).
    connect_timeout: float = Field(default=10.0, gt=0)
    timeout: float = Field(default=300.0, gt=0)
    stream_idle_timeout: float | None = Field(default=120.0, gt=0)
    ws_ping_interval: float | None = Field(default=20.0, gt=0)
    # How long past an exec's timeout_seconds a server may take to end it before the
    # client kills it itself (capped at ``timeout``).
    exec_grace: float = Field(default=30.0, ge=0)
    # Largest SSE event / WebSocket message accepted; a bigger one is a server fault.
    sse_max_event_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    ws_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)

    # Retries of idempotent requests (connect errors, 502/503/504), with backoff.
    retries: int = Field(default=3, ge=0, le=20)
    backoff_initial: float = Field(default=0.1, ge=0)
    backoff_max: float = Field(default=5.0, ge=0)
    # Total time an exec stream may spend resuming after dropped connections.
    reconnect_seconds: float = Field(default=60.0, ge=0)

    max_connections: int = Field(default=100, ge=1)
    # Idle connections kept open; None: as many as ``max_connections``. httpcore
    # closes every idle connection once the pool holds more connections than this,
    # so a lower figure turns keep-alive off under concurrency (``pool.py``).
    max_keepalive_connections: int | None = Field(default=None, ge=0)

    @field_validator("url")
    @classmethod
    def _clean_url(cls, value: str) -> str:
        """Strip a trailing ``/``; drop ``user:password@`` so no secret rides in the URL."""
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("http", "https"):
            raise ValueError("the BoxLite REST URL must start with http:// or https://")
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            logger.warning(
                "credentials in BOXLITE_REST_URL are ignored; use BOXLITE_API_KEY (0.10) or "
                "BOXLITE_REST_CLIENT_ID/BOXLITE_REST_CLIENT_SECRET (0.9)"
            )
            value = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
        return value

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (from 1): doubling from
        ``backoff_initial`` up to ``backoff_max``, less up to half at random so that
        clients dropped together do not come back together."""
        delay = min(self.backoff_max, self.backoff_initial * 2.0 ** min(attempt - 1, 20))
        return delay * (0.5 + random.random() / 2)

    @property
    def oauth_credentials(self) -> bool:
        return self.client_id is not None and self.client_secret is not None

    def preferred_generation(self) -> Generation | None:
        """The generation the settings alone decide (rule 1 of the module docstring)."""
        if self.api != "auto":
            return self.api
        ten = self.api_key is not None or self.path_prefix is not None
        nine = self.oauth_credentials or self.prefix is not None
        if ten and not nine:
            return "0.10"
        if nine and not ten:
            return "0.9"
        return None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> RestSettings:
        """Settings from ``BOXLITE_REST_*`` / ``BOXLITE_API_KEY``, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for var, field in ENV_NAMES.items():
            raw = env.get(var)
            # An empty path prefix is meaningful (no routing slot); other empties are unset.
            if raw is not None and (raw != "" or field == "path_prefix"):
                values[field] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:  # never echo the input: it may hold a secret
            names = {field: var for var, field in ENV_NAMES.items()}
            problems = "; ".join(
                f"{names.get(str(where[0]), where[0]) if where else 'settings'}: {error['msg']}"
                for error in exc.errors()
                for where in [error["loc"]]
            )
            raise InvalidArgumentError(f"invalid BoxLite REST settings: {problems}") from None
