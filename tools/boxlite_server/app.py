"""The Starlette app: routes of both generations, each wrapped the same way.

Every operation goes through ``_endpoint``: auth, strict request check,
idempotency, the handler (BoxliteError → documented error body), strict
response check, and the chance of an injected cut. ``serve`` runs it all with
uvicorn inside the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.errors import BoxliteError

from .auth import Authenticator
from .config import Generation, ServerConfig
from .errors import (
    IDEMPOTENCY_MISMATCH,
    PAYLOAD_TOO_LARGE,
    WIRE_ERRORS,
    HttpError,
    error_response,
    wire_error,
)
from .faults import Faults, protocol_classes
from .idempotency import fingerprint
from .state import Call, ServerState, new_request_id
from .validation import Violation

log = logging.getLogger("boxlite_server")

Handler = Callable[[Call], Awaitable[Response]]
WsHandler = Callable[[WebSocket, ServerState, Generation], Awaitable[None]]

#: Operations anyone may call.
PUBLIC = frozenset({"getConfig", "getToken"})
#: JSON and form bodies are read up front (and capped); others are streamed.
BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Op:
    """One documented operation: id, method, path below the generation root."""

    operation: str
    method: str
    path: str
    handler: Handler
    generations: tuple[Generation, ...] = ("0.9", "0.10")
    stream_body: bool = False
    root: bool = False  # path is below /{prefix} (config, token, me), not the box root


class CutResponse(Response):
    """Sends nothing: drops the connection (an injected fault)."""

    def __init__(self, state: ServerState) -> None:
        super().__init__(status_code=599)
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._state.transports.cut(scope.get("client"), flush=False):
            await Response(status_code=500)(scope, receive, send)
            return
        while (await receive())["type"] != "http.disconnect":
            pass


def _violation(
    state: ServerState,
    kind: Any,
    generation: str,
    operation: str,
    request: Request,
    message: str,
    status: int | None = None,
) -> None:
    state.violations.record(
        Violation(kind, generation, operation, request.method, request.url.path, message, status)
    )


def _path_params(
    state: ServerState, generation: Generation, request: Request, op: Op
) -> dict[str, str]:
    params = dict(request.path_params)
    if not op.root:
        if generation == "0.9":
            params["prefix"] = state.config.v09_tenant
        elif state.config.v10_prefix:
            params["prefix"] = state.config.v10_prefix
    return params


def _response_body(response: Response) -> bytes | None:
    if isinstance(response, StreamingResponse) or getattr(response, "streamed", False):
        return None
    return bytes(response.body)


def _endpoint(
    state: ServerState,
    generation: Generation,
    op: Op,
    check_generations: tuple[Generation, ...],
) -> Callable[[Request], Awaitable[Response]]:
    checker = state.checker
    # Keys are honoured on every mutation whose body can be fingerprinted, not only
    # where the documents list the header (a retried clone must not clone twice).
    keyed = op.method not in ("GET", "HEAD") and not op.stream_body

    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        headers = {"x-request-id": request_id}

        def fail(wire: Any, message: str) -> Response:
            return error_response(generation, wire, message, request_id, headers)

        response = await _run(request, request_id, fail)
        if state.config.strict:
            response = _check_response(request, response, fail)
        if response.status_code != 599:
            response.headers.setdefault("x-request-id", request_id)
        return response

    async def _run(
        request: Request, request_id: str, fail: Callable[[Any, str], Response]
    ) -> Response:
        if op.operation not in PUBLIC:
            reason = state.auth.check(generation, request.headers.get("authorization"))
            if reason is not None:
                return fail(WIRE_ERRORS["AuthError"], reason)
        body: bytes | None = None
        if not op.stream_body:
            body = await request.body()
            if len(body) > BODY_LIMIT:
                return fail(PAYLOAD_TOO_LARGE, f"request body over {BODY_LIMIT} bytes")
        if state.config.strict:
            for gen in check_generations:
                problems = checker.check_request(
                    checker.operation(gen, op.operation),
                    _path_params(state, gen, request, op),
                    request.query_params.multi_items(),
                    request.headers,
                    body,
                )
                if problems:
                    message = "; ".join(problems)
                    _violation(state, "request", gen, op.operation, request, message)
                    return fail(
                        WIRE_ERRORS["InvalidArgumentError"],
                        f"request does not match the {gen} API ({op.operation}): {message}",
                    )
        call = Call(request, state, generation, op.operation, request_id, body)
        key = request.headers.get("idempotency-key") if keyed else None
        if key is None:
            return await _handle(call, fail)
        print_ = fingerprint(request.method, request.url.path, request.url.query, body or b"")
        store = state.idempotency
        scoped_key = f"{generation}:{key}"
        try:
            async with store.lock(scoped_key):
                stored = store.get(scoped_key)
                if stored is not None and stored.fingerprint != print_:
                    return fail(
                        IDEMPOTENCY_MISMATCH,
                        "Idempotency-Key was already used for a different request; "
                        "use a new key for a new request",
                    )
                if stored is not None:
                    store.replays += 1
                    response = Response(
                        stored.body, status_code=stored.status, headers=dict(stored.headers)
                    )
                    response.headers["idempotent-replayed"] = "true"
                else:
                    response = await _handle(call, fail)
                    body_bytes = _response_body(response)
                    if response.status_code < 500 and body_bytes is not None:
                        store.put(
                            scoped_key,
                            print_,
                            response.status_code,
                            [
                                (k, v)
                                for k, v in response.headers.items()
                                if k.lower() != "content-length"
                            ],
                            body_bytes,
                        )
        finally:
            store.release(scoped_key)
        if state.faults.cut_response(generation, op.operation, request.method, keyed=True):
            return CutResponse(state)
        return response

    async def _handle(call: Call, fail: Callable[[Any, str], Response]) -> Response:
        try:
            response = await op.handler(call)
        except BoxliteError as exc:
            return fail(wire_error(exc), exc.message)
        except HttpError as exc:
            return fail(exc.wire, exc.message)
        except Exception as exc:
            log.exception("unhandled error in %s", op.operation)
            _violation(
                state,
                "exception",
                generation,
                op.operation,
                call.request,
                f"unhandled {type(exc).__name__}: {exc}",
            )
            return fail(
                WIRE_ERRORS["InternalError"],
                f"internal server error in {op.operation}: {type(exc).__name__}: {exc}",
            )
        if call.request.headers.get("idempotency-key") is None or not keyed:
            if state.faults.cut_response(
                generation, op.operation, call.request.method, keyed=False
            ):
                return CutResponse(state)
        return response

    def _check_response(
        request: Request, response: Response, fail: Callable[[Any, str], Response]
    ) -> Response:
        if response.status_code == 599:
            return response
        problems: list[str] = []
        for gen in check_generations:
            problems += checker.check_response(
                gen,
                checker.operation(gen, op.operation),
                request.method,
                response.status_code,
                response.headers.get("content-type"),
                _response_body(response),
            )
        if not problems:
            return response
        message = "; ".join(problems)
        _violation(
            state, "response", generation, op.operation, request, message, response.status_code
        )
        return fail(
            WIRE_ERRORS["InternalError"],
            f"strict mode: the server's own {response.status_code} response to "
            f"{op.operation} breaks the {generation} API: {message}",
        )

    return endpoint


def _ws_endpoint(
    state: ServerState, generation: Generation, handler: WsHandler
) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(websocket: WebSocket) -> None:
        await handler(websocket, state, generation)

    return endpoint


def _routes(state: ServerState) -> list[BaseRoute]:
    from . import boxes, execs, files, meta, sse, ws  # route tables

    config = state.config
    routes: list[BaseRoute] = []
    ops: list[Op] = [*meta.OPS, *boxes.OPS, *execs.OPS, *files.OPS, *sse.OPS]
    for op in ops:
        gens = [g for g in op.generations if config.serves(g)]
        if not gens:
            continue
        if op.root:
            # /v1/config is shared when both generations are served under /v1.
            by_path: dict[str, list[Generation]] = {}
            for gen in gens:
                prefix = f"/{config.v09_prefix}" if gen == "0.9" else "/v1"
                by_path.setdefault(prefix + op.path, []).append(gen)
            for path, path_gens in by_path.items():
                primary: Generation = "0.10" if "0.10" in path_gens else "0.9"
                routes.append(
                    Route(
                        path, _endpoint(state, primary, op, tuple(path_gens)), methods=[op.method]
                    )
                )
            continue
        for gen in gens:
            routes.append(
                Route(
                    state.root(gen) + op.path,
                    _endpoint(state, gen, op, (gen,)),
                    methods=[op.method],
                )
            )
    for gen, path, handler in ws.ROUTES:
        if config.serves(gen):
            routes.append(WebSocketRoute(state.root(gen) + path, _ws_endpoint(state, gen, handler)))
    if config.fault_api:
        routes += meta.fault_routes(state)
    return routes


def _generation_of(state: ServerState, path: str) -> Generation:
    config = state.config
    if config.serves("0.9") and (
        not config.serves("0.10")
        or path.startswith(config.v09_root + "/")
        or path == config.v09_root
    ):
        return "0.9"
    return "0.10"


def create_app(
    runtime: Runtime, config: ServerConfig | None = None, state: ServerState | None = None
) -> Starlette:
    """The server as an ASGI app; ``app.state.boxlite`` is its ServerState."""
    config = config or ServerConfig()
    state = state or ServerState(runtime, config)

    async def not_found(request: Request, exc: Exception) -> Response:
        generation = _generation_of(state, request.url.path)
        status = int(getattr(exc, "status_code", 404))
        if status == 404:
            return error_response(
                generation,
                WIRE_ERRORS["NotFoundError"],
                f"no such route: {request.method} {request.url.path}",
                new_request_id(),
            )
        wire = replace(WIRE_ERRORS["InvalidArgumentError"], status=status)
        return error_response(
            generation,
            wire,
            f"method {request.method} is not allowed on {request.url.path}",
            new_request_id(),
        )

    app = Starlette(routes=_routes(state), exception_handlers={404: not_found, 405: not_found})
    app.state.boxlite = state
    return app


@dataclass
class RunningServer:
    """A server running in this event loop.

    ``url`` is the base URL (``http://127.0.0.1:PORT``); ``v09_url`` and
    ``v10_url`` are the box roots of each generation. ``violations`` lists what
    strict mode found (a test asserts it is empty); ``faults`` steers injected
    cuts; ``auth`` issues and expires 0.9 tokens; ``state`` is everything else.
    """

    url: str
    port: int
    config: ServerConfig
    state: ServerState
    _server: uvicorn.Server = field(repr=False)
    _task: asyncio.Task[None] = field(repr=False)

    @property
    def v09_url(self) -> str:
        return self.url + self.config.v09_root

    @property
    def v10_url(self) -> str:
        return self.url + self.config.v10_root

    @property
    def violations(self) -> list[Violation]:
        return self.state.violations.items

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def auth(self) -> Authenticator:
        return self.state.auth


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers: the embedding process keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def uvicorn_config(app: Starlette, state: ServerState) -> uvicorn.Config:
    http_class, ws_class = protocol_classes(state.transports)
    keepalive = state.config.keepalive_seconds
    return uvicorn.Config(
        app,
        host=state.config.host,
        port=state.config.port,
        http=http_class,
        ws=ws_class,
        lifespan="off",
        log_level=state.config.log_level,
        access_log=False,
        ws_ping_interval=keepalive,
        ws_ping_timeout=keepalive * 3,
        ws_max_size=16 * 1024 * 1024,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP (proto 0 would leave Nagle on: +40 ms on every reused connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(
    runtime: Runtime, config: ServerConfig | None = None
) -> AsyncIterator[RunningServer]:
    """Run the server in the current event loop on ``config.host``/``config.port``.

    Port 0 (the default) picks a free port. On exit, running executions are
    killed and the server stops; the runtime is the caller's to close.
    """
    config = config or ServerConfig()
    state = ServerState(runtime, config)
    app = create_app(runtime, config, state)
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    server = _EmbeddedServer(uvicorn_config(app, state))
    task = asyncio.get_running_loop().create_task(
        server.serve(sockets=[sock]), name="boxlite-server"
    )
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("boxlite server stopped while starting")
        await asyncio.sleep(0.005)
    host = f"[{config.host}]" if ":" in config.host else config.host
    running = RunningServer(f"http://{host}:{port}", port, config, state, server, task)
    try:
        yield running
    finally:
        await state.executions.aclose()
        state.ports.close_all()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.contextmanager
def serve_in_thread(
    make_runtime: Callable[[], Runtime], config: ServerConfig | None = None
) -> Iterator[RunningServer]:
    """Run the server (and a runtime it makes) on its own thread and event loop.

    For clients that block the calling thread, like the official SDK (its
    ``Execution.stdout()`` can wait for its attach to connect): with the server
    in the same loop that is a deadlock. ``make_runtime`` is called on the
    server's thread; the runtime is closed there on exit. The RunningServer's
    ``state`` belongs to that thread: read ``url`` and ``violations`` freely,
    change nothing.
    """
    ready: queue.Queue[RunningServer | BaseException] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            runtime = make_runtime()
        except BaseException as exc:
            ready.put(exc)
            return
        try:
            async with serve(runtime, config) as server:
                ready.put(server)
                await stop.wait()
        except BaseException as exc:
            ready.put(exc)
        finally:
            await runtime.aclose()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="boxlite-server", daemon=True
    )
    thread.start()
    started = ready.get()
    if isinstance(started, BaseException):
        thread.join()
        raise started
    try:
        yield started
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
