"""Discovery and identity: GET /config, POST /oauth/tokens, GET /me; the fault API."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .app import Op
from .errors import WIRE_ERRORS, HttpError
from .faults import CutRule
from .state import Call, ServerState


def config_body(call: Call) -> dict[str, Any]:
    """GET /v1/config: the union of 0.9's SandboxConfig and 0.10's ServerConfig."""
    config = call.config
    defaults: dict[str, Any] = {"security_preset": "standard"}
    capabilities: dict[str, Any] = {
        **config.capabilities(),
        "file_transfer_max_bytes": config.file_transfer_max_bytes,
        "supported_security_presets": ["standard"],
        "idempotency_key_lifetime": f"PT{int(config.idempotency_ttl_seconds)}S",
    }
    if config.serves("0.9"):
        defaults["auto_remove"] = config.default_auto_remove
    if config.serves("0.10"):
        defaults["auto_delete"] = 0
        capabilities["linux_capabilities_enabled"] = False
    return {"defaults": defaults, "overrides": {}, "capabilities": capabilities}


async def get_config(call: Call) -> Response:
    return JSONResponse(config_body(call))


async def get_token(call: Call) -> Response:
    form = dict(parse_qsl((call.body or b"").decode("latin-1"), keep_blank_values=True))
    if form.get("grant_type") != "client_credentials":
        raise HttpError(
            WIRE_ERRORS["InvalidArgumentError"],
            "grant_type must be client_credentials (form-encoded body)",
        )
    issued = call.state.auth.issue(
        form.get("client_id", ""), form.get("client_secret", ""), form.get("scope")
    )
    if issued is None:
        raise HttpError(WIRE_ERRORS["AuthError"], "invalid client credentials")
    bearer, token = issued
    return JSONResponse(
        {
            "access_token": bearer,
            "token_type": "bearer",
            "expires_in": call.config.token_ttl_seconds,
            "scope": token.scope,
        },
        headers={"cache-control": "no-store"},
    )


async def get_me(call: Call) -> Response:
    return JSONResponse(
        {
            "sub": "boxlite-server-api-key" if call.config.api_key else "anonymous",
            "principal_type": "service_account",
            "display_name": "boxlite test server",
            "path_prefix": call.config.v10_prefix,
            "scopes": [
                "boxes:read",
                "boxes:write",
                "boxes:exec",
                "images:read",
                "images:write",
                "runtime:admin",
            ],
            "expires_at": None,
        }
    )


OPS = [
    Op("getConfig", "GET", "/config", get_config, root=True),
    Op("getToken", "POST", "/oauth/tokens", get_token, generations=("0.9",), root=True),
    Op("getCurrentPrincipal", "GET", "/me", get_me, generations=("0.10",), root=True),
]


def fault_routes(state: ServerState) -> list[BaseRoute]:
    """``/_faults``: GET the plan and what fired; POST ``{"probability", "seed",
    "scopes", "rules": [CutRule fields...]}`` to change it; DELETE to clear."""

    async def faults(request: Request) -> Response:
        plan = state.faults
        if request.method == "POST":
            body = await request.json()
            plan.configure(body.get("probability"), body.get("seed"), body.get("scopes"))
            for rule in body.get("rules", []):
                plan.add(CutRule(**rule))
        elif request.method == "DELETE":
            plan.clear()
        return JSONResponse(plan.describe())

    async def violations(request: Request) -> Response:
        return JSONResponse([str(v) for v in state.violations.items])

    return [
        Route("/_faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_violations", violations, methods=["GET"]),
    ]
