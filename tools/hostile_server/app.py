"""The hostile server: one Starlette app, every behaviour under its own base URL.

A client pointed at ``{server}/b/{behaviour}`` (as its BoxLite REST URL) meets a
server of both generations that answers correctly except where that behaviour
misbehaves. A tag after ``~`` (``/b/tar-dotdot~0.9``) is ignored but counted:
``GET /_hits`` answers how many hostile answers each ``behaviour~tag`` got, so a
fuzz can tell that every probe met its behaviour. ``serve_hostile`` runs it with
uvicorn in the current event loop; ``python -m tools.hostile_server`` runs it as a
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import base
from .bodies import not_found_json
from .catalogue import BY_NAME
from .raw import Transports, protocol_classes

log = logging.getLogger("hostile_server")
NORMAL = "normal"  # a behaviour name that misbehaves nowhere


@dataclass
class HostileState:
    config: base.HostileConfig
    transports: Transports = field(default_factory=Transports)
    hits: dict[str, int] = field(default_factory=dict)  # behaviour~tag -> hostile answers

    def ctx(self, segment: str, path: str, method: str) -> base.Ctx | None:
        """The request's context; None when the path or the behaviour is unknown."""
        behaviour = segment.partition("~")[0]
        found = base.route(method, path)
        if found is None or (behaviour != NORMAL and behaviour not in BY_NAME):
            return None
        generation, op, params = found
        return base.Ctx(
            behaviour, generation, op, params, self.config, self.transports, segment=segment
        )

    def handler(self, ctx: base.Ctx) -> Any:
        behaviour = BY_NAME.get(ctx.behaviour)
        if behaviour is None:
            return None
        if ctx.generation not in ("both", *behaviour.generations):
            return None
        handler = behaviour.handlers.get(ctx.op)
        if handler is not None:
            self.hits[ctx.segment] = self.hits.get(ctx.segment, 0) + 1
        return handler


def create_app(config: base.HostileConfig | None = None) -> Starlette:
    state = HostileState(config or base.HostileConfig())

    async def http(request: Request) -> Response:
        ctx = state.ctx(
            request.path_params["behaviour"], request.path_params["rest"], request.method
        )
        if ctx is None:
            return not_found_json()
        ctx.request = request
        handler = state.handler(ctx)
        if handler is None:
            return await base.answer(ctx)
        response: Response = await handler(ctx)
        return response

    async def websocket(ws: WebSocket) -> None:
        ctx = state.ctx(ws.path_params["behaviour"], ws.path_params["rest"], "WS")
        if ctx is None:
            await ws.close(1008)
            return
        ctx.websocket = ws
        handler = state.handler(ctx)
        await (handler(ctx) if handler is not None else base.attach(ctx))

    async def hits(request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(state.hits)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    app = Starlette(
        routes=[
            Route("/_hits", hits),
            Route("/b/{behaviour}/v1/{rest:path}", http, methods=methods),
            WebSocketRoute("/b/{behaviour}/v1/{rest:path}", websocket),
        ]
    )
    app.state.hostile = state
    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:  # the embedding process keeps its own handlers
        yield


@dataclass
class RunningHostile:
    url: str
    state: HostileState

    def base_url(self, behaviour: str) -> str:
        """The REST URL a client uses to meet ``behaviour``."""
        return f"{self.url}/b/{behaviour}"


@contextlib.asynccontextmanager
async def serve_hostile(
    config: base.HostileConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningHostile]:
    """Run the hostile server in this event loop on a free port (unless ``port``)."""
    app = create_app(config)
    state: HostileState = app.state.hostile
    http_class, ws_class = protocol_classes(state.transports)
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            http=http_class,
            ws=ws_class,
            lifespan="off",
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
            ws_max_size=16 * 1024 * 1024,
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="hostile-server")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the hostile server stopped while starting")
        await asyncio.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningHostile(f"http://{host}:{bound}", state)
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
