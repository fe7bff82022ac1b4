"""Serving an MCPServer over stdio, SSE or streamable HTTP, as ``Settings`` say.

The HTTP transports always check the ``Host`` (and any ``Origin``) header against
an allow-list, wherever they are bound: the SDK turns DNS-rebinding protection on
only for loopback binds, so this module passes its own settings. Streamable HTTP
never answers with plain JSON (that would drop exec progress). Bearer auth, when
configured, wraps the whole HTTP app; the token's subject is the owner identity
the tools see through ``get_access_token()``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import parse_qs

import anyio
import uvicorn
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from . import stdio
from .event_store import BoundedEventStore

logger = logging.getLogger(__name__)

STREAMABLE_HTTP_PATH: Final = "/mcp"
SSE_PATH: Final = "/sse"
SSE_MESSAGE_PATH: Final = "/messages/"

_LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS: Final = ("0.0.0.0", "::", "")


class TransportConfigError(ValueError):
    """The transport cannot be set up as configured (bad host, port taken ...)."""


def host_header(host: str) -> str:
    """How ``host`` appears in a Host header: IPv6 literals in brackets."""
    if host.startswith("["):
        return host
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def default_allowed_hosts(host: str, port: int) -> list[str]:
    """Host header values a server bound to ``host:port`` accepts by default.

    Loopback names always; the bound name itself; for a wildcard bind also this
    machine's host names (anything else must be listed with ``--allowed-host``).
    """
    names: list[str] = list(_LOOPBACK_NAMES)
    if host in _WILDCARDS:
        for name in (socket.gethostname(), socket.getfqdn()):
            if name and name not in names:
                names.append(name)
    else:
        bound = host_header(host)
        if bound not in names:
            names.append(bound)
    allowed = [f"{name}:{port}" if port else f"{name}:*" for name in names]
    if port in (80, 443):  # clients omit the default port from Host
        allowed += names
    return allowed


def security_settings(settings: Settings, port: int) -> TransportSecuritySettings:
    """DNS-rebinding protection for the bound port: on, with defaults plus the configured lists."""
    hosts = default_allowed_hosts(settings.host, port)
    hosts += [h for h in settings.allowed_hosts if h not in hosts]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    origins += [o for o in settings.allowed_origins if o not in origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerAuth:
    """Require a valid bearer token on every HTTP request; lifespan events pass through.

    Uses the SDK's own pieces, in the order its ``auth=`` setting would: the
    bearer backend authenticates, the auth context exposes the token to tools,
    and unauthenticated requests get 401 with ``WWW-Authenticate: Bearer``.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self._app = app
        self._guarded = AuthenticationMiddleware(
            AuthContextMiddleware(RequireAuthMiddleware(app, required_scopes=[])),
            backend=BearerAuthBackend(verifier),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            await self._guarded(scope, receive, send)
        else:
            await self._app(scope, receive, send)


class SseSessionHeader:
    """Show an SSE connection's session id to the tools as ``mcp-session-id``.

    Over SSE each message is a POST to ``/messages/?session_id=...``; the query
    names the connection but no header does, so without this every SSE client
    would look like the same anonymous owner. The header is what a legacy
    streamable-HTTP session carries, so owners work the same on both; a header a
    client sends itself is dropped, never trusted.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SSE_MESSAGE_PATH):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            session = (query.get("session_id") or [""])[0]
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != _SESSION_HEADER]
            if session:
                headers.append((_SESSION_HEADER, session.encode("latin-1")))
            scope = {**scope, "headers": headers}
        await self._app(scope, receive, send)


_SESSION_HEADER: Final = b"mcp-session-id"


def http_app(
    server: MCPServer[Any],
    settings: Settings,
    *,
    port: int,
    verifier: TokenVerifier | None = None,
) -> ASGIApp:
    """The ASGI app for ``settings.transport`` (``sse`` or ``streamable-http``)."""
    security = security_settings(settings, port)
    app: ASGIApp
    if settings.transport == "streamable-http":
        app = server.streamable_http_app(
            streamable_http_path=STREAMABLE_HTTP_PATH,
            json_response=False,  # JSON responses drop progress notifications
            stateless_http=False,
            event_store=BoundedEventStore(),  # a dropped stream resumes with Last-Event-ID
            transport_security=security,
            host=settings.host,
        )
    elif settings.transport == "sse":
        app = SseSessionHeader(
            server.sse_app(
                sse_path=SSE_PATH,
                message_path=SSE_MESSAGE_PATH,
                transport_security=security,
                host=settings.host,
            )
        )
    else:
        raise TransportConfigError(f"transport {settings.transport!r} is not served over HTTP")
    return BearerAuth(app, verifier) if verifier is not None else app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise TransportConfigError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = (
            "choose another --port, or stop what is using it"
            if exc.errno == errno.EADDRINUSE
            else "check --host and --port"
        )
        message = f"cannot listen on {host}:{port}: {exc.strerror}; {hint}"
        raise TransportConfigError(message) from None
    sock.set_inheritable(False)
    return sock


def endpoint_url(settings: Settings, port: int) -> str:
    """The URL clients connect to (for logs and the CLI's startup line)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    host = "[::1]" if host == "::" else host_header(host)
    path = STREAMABLE_HTTP_PATH if settings.transport == "streamable-http" else SSE_PATH
    return f"http://{host}:{port}{path}"


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: ``serve`` owns signals (one path, no races)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    server: MCPServer[Any],
    settings: Settings,
    *,
    verifier: TokenVerifier | None = None,
    sock: socket.socket | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until the client leaves (stdio: EOF) or SIGTERM/SIGINT asks to stop.

    A signal ends stdio at once and HTTP gracefully (open requests finish, then the
    lifespan removes scratch boxes); a second SIGINT forces HTTP down.
    """
    if settings.transport == "stdio":
        if verifier is not None:
            logger.warning("bearer tokens apply to HTTP transports; stdio serves one local client")
        logger.info("serving MCP on stdio")
        stdin = _stat_or_none(0)
        async with anyio.create_task_group() as tg:

            def stop_stdio() -> None:
                tg.cancel_scope.cancel()
                # Needed when the SDK's transport serves (a thread blocks reading
                # stdin); harmless when boxlite_mcp.stdio does (nothing reads it).
                _wake_stdin_reader(stdin)

            if handle_signals:
                await tg.start(_on_signal, stop_stdio)
            await stdio.run_stdio(server)
            tg.cancel_scope.cancel()
        return
    if sock is None:
        sock = bind(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    app = http_app(server, settings, port=port, verifier=verifier)
    security = security_settings(settings, port)
    if settings.host in _WILDCARDS and not settings.allowed_hosts:
        logger.warning(
            "listening on all interfaces; requests must carry one of the Host headers %s "
            "(add the names clients use with --allowed-host)",
            ", ".join(security.allowed_hosts),
        )
    config = uvicorn.Config(
        app,
        log_config=None,  # our handlers: stderr, one format
        access_log=False,  # request lines carry session ids
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    http = _Uvicorn(config)

    def stop() -> None:
        if http.should_exit:
            http.force_exit = True
        http.should_exit = True

    logger.info(
        "serving MCP (%s%s) on %s",
        settings.transport,
        ", bearer auth" if verifier is not None else "",
        endpoint_url(settings, port),
    )
    with sock:
        async with anyio.create_task_group() as tg:
            if handle_signals:
                await tg.start(_on_signal, stop)
            await http.serve(sockets=[sock])
            tg.cancel_scope.cancel()


async def _on_signal(
    action: Callable[[], None], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            action()


def _stat_or_none(fd: int) -> os.stat_result | None:
    try:
        return os.fstat(fd)
    except OSError:
        return None


def _wake_stdin_reader(original: os.stat_result | None) -> None:
    """Let a cancelled stdio server finish although its stdin stays open.

    The SDK reads stdin with a blocking read in a worker thread, which
    cancellation waits for; while serving, fd 0 is /dev/null and the wire is a
    private duplicate. For a pipe (how MCP clients connect) a newline written to
    that pipe ends the read and the cancellation completes. Otherwise (a
    terminal) a timer ends the process once the lifespan has had time to clean up.
    """
    if original is not None and stat.S_ISFIFO(original.st_mode):
        for name in os.listdir("/proc/self/fd"):
            held = _stat_or_none(int(name))
            if held is None or (held.st_dev, held.st_ino) != (original.st_dev, original.st_ino):
                continue
            try:
                fd = os.open(f"/proc/self/fd/{name}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.write(fd, b"\n")
                return
            except OSError:
                continue
            finally:
                os.close(fd)
    timer = threading.Timer(_STDIN_GRACE_SECONDS, _exit_blocked)
    timer.daemon = True
    timer.start()


_STDIN_GRACE_SECONDS: Final = 10.0


def _exit_blocked() -> None:
    logger.warning("stdin is still blocking the shutdown; exiting now")
    logging.shutdown()
    os._exit(0)
