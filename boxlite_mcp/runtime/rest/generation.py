"""Which API generation a BoxLite server speaks, its 0.10 routing slot, 0.9's OAuth2 exchange.

The rules are those of the settings module's docstring: an explicit choice or
credentials decide; else ``GET /v1/config`` names keys only one generation has;
else a ``GET /v1/me`` that answers (even 401/403) means 0.10.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ..errors import AuthError
from .auth import ApiKeyAuth, Auth
from .errors import parse_error_body, unavailable
from .settings import Generation
from .types import Principal, TokenResponse, parse

if TYPE_CHECKING:
    from .client import RestClient

_CONFIG_KEYS_010 = frozenset({"max_boxes_per_path_prefix", "linux_capabilities_enabled"})
_CONFIG_KEYS_09 = frozenset({"max_boxes_per_prefix"})


async def detect_generation(client: RestClient) -> Generation:
    """Rules 2 to 4 of the settings module's docstring."""
    root = f"{client.settings.url}/v1"
    config = await client.config()
    caps = config.raw_capability_keys
    defaults = set(config.defaults or {})
    ten = bool(caps & _CONFIG_KEYS_010) or "auto_delete" in defaults
    nine = bool(caps & _CONFIG_KEYS_09) or "auto_remove" in defaults
    if ten != nine:
        return "0.10" if ten else "0.9"
    probe_auth = ApiKeyAuth(client.settings.api_key) if client.settings.api_key else Auth()
    headers = {}
    if (value := await probe_auth.authorization()) is not None:
        headers["Authorization"] = value
    try:
        response = await client.http.get(f"{root}/me", headers=headers)
    except httpx.TransportError as exc:
        raise unavailable(f"{root}/me", exc) from exc
    if response.status_code in (200, 401, 403):
        return "0.10"
    return "0.9"


async def routing_slot(client: RestClient, root: str) -> str:
    """0.10: the routing slot from ``GET /v1/me``; none when the server has no /me."""
    response = await client.request(
        "GET", f"{root}/me", ok_statuses=(404, 405), what="read GET /v1/me"
    )
    if response.status_code != 200:
        return ""
    return parse(Principal, response.content, "read GET /v1/me").routing_slot


async def exchange_credentials(
    client: RestClient, root: str, form: dict[str, str]
) -> TokenResponse:
    """0.9: ``POST {root}/oauth/tokens`` with the client-credentials form."""
    response = await client.request(
        "POST",
        f"{root}/oauth/tokens",
        data=form,
        auth=False,
        idempotent=True,
        ok_statuses=(400, 401, 403),
        what="exchange the OAuth2 client credentials",
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
