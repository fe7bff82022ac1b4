"""Who is asking: the owner of a request, and the session it belongs to.

The owner is, in order: the authenticated principal (bearer auth on HTTP), the
legacy ``mcp-session-id`` of a stateful HTTP session, the one local client when
the transport carries no headers (stdio, in-memory), and otherwise one shared
``anonymous`` owner (stateless HTTP without auth, where nothing else is stable).

A session is a long-lived, handshake-era connection (stdio, a legacy HTTP session,
an SSE stream). 2026-era requests each get a fresh connection, so they have no
session; their boxes live until the idle TTL or shutdown.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..sessions.owners import ANONYMOUS_OWNER, LOCAL_OWNER
from .sdk import connection_of

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
_SESSION_STATE_KEY = "boxlite_mcp.session"

SessionEndHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Requester:
    """Who sent a request: its owner and, when it has one, its session tag."""

    owner: str
    kind: str  # "principal" | "session" | "local" | "anonymous"
    session: str | None = None


#: The request being served, set by ``remember_request`` for code without a Context.
_current: ContextVar[ServerRequestContext[Any, Any] | None] = ContextVar(
    "boxlite_mcp_request", default=None
)


async def remember_request(
    ctx: ServerRequestContext[Any, Any],
    call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
) -> HandlerResult:
    """Server middleware: make the request context reachable from resources."""
    token = _current.set(ctx)
    try:
        return await call_next(ctx)
    finally:
        _current.reset(token)


def current_request() -> ServerRequestContext[Any, Any] | None:
    return _current.get()


def _access_token(request: object) -> AccessToken | None:
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, Mapping) else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token
    return get_access_token()


def _headers(request: object) -> Mapping[str, str] | None:
    headers = getattr(request, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def owner_of(ctx: ServerRequestContext[Any, Any] | None) -> tuple[str, str]:
    """(owner, kind) for a request; ``local`` outside any request."""
    if ctx is None:
        return LOCAL_OWNER, "local"
    request = ctx.request
    token = _access_token(request)
    if token is not None:
        principal = token.subject or token.client_id
        return f"principal:{principal}", "principal"
    headers = _headers(request)
    if headers is None:
        return LOCAL_OWNER, "local"
    session_id = headers.get(SESSION_HEADER)
    if session_id:
        return f"session:{session_id}", "session"
    return ANONYMOUS_OWNER, "anonymous"


def requester(
    ctx: ServerRequestContext[Any, Any] | None, on_session_end: SessionEndHook
) -> Requester:
    """Who is asking; hooks ``on_session_end`` the first time a session is seen."""
    owner, kind = owner_of(ctx)
    session = None if ctx is None else _session_tag(ctx, on_session_end)
    return Requester(owner=owner, kind=kind, session=session)


def _session_tag(ctx: ServerRequestContext[Any, Any], on_session_end: SessionEndHook) -> str | None:
    connection = connection_of(ctx)
    if connection is None or connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    tag = connection.state.get(_SESSION_STATE_KEY)
    if isinstance(tag, str):
        return tag
    tag = uuid.uuid4().hex
    try:
        connection.exit_stack.push_async_callback(on_session_end, tag)
    except AttributeError:  # the SDK moved its teardown: fall back to TTL reaping
        logger.warning("cannot hook session end; boxes will be reaped by idle TTL")
        return None
    connection.state[_SESSION_STATE_KEY] = tag
    return tag
