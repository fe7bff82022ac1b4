"""The one place that reaches into the MCP SDK's internals; tests/mcp/test_sdk.py pins them.

Three things the SDK (2.3) has no public API for:

- A tool whose input schema *is* a pydantic model (flat, unknown fields rejected)
  with argument errors that name each bad field. ``MCPServer.add_tool`` derives the
  schema from a function signature and reports a raw ``ValidationError``, so this
  subclasses its ``Tool`` and builds the ``FuncMetadata`` by hand.
- The connection behind a request (to learn its protocol version and to run code
  when a session ends): only the session's private ``_connection`` holds it.
- Whether anyone can still hear a handshake-era streamable-HTTP request
  (``response_heard``): only its session's transport knows, in the session
  manager's ``_server_instances`` and the transport's ``_request_streams``.

Everything here degrades to a clear failure or to "no session" if the SDK moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ValidationError, create_model

from .errors import argument_error

ToolContext = Context[Any, Any]
#: What a model tool runs: the request's context and the validated input model.
ToolRun = Callable[[ToolContext, BaseModel], Awaitable[Any]]


class ModelTool(Tool):
    """A tool whose arguments are one pydantic model, checked with clear messages."""

    input_model: type[BaseModel]

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        if not isinstance(arguments, dict):
            raise ToolError(f"Arguments for {self.name} must be a JSON object.")
        try:
            self.input_model.model_validate(self.fn_metadata.pre_parse_json(arguments))
        except ValidationError as exc:
            raise argument_error(self.name, self.input_model, exc) from None
        return await super().run(arguments, context, convert_result)


def model_tool(
    *,
    name: str,
    title: str,
    description: str,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
    annotations: ToolAnnotations,
    run: ToolRun,
) -> ModelTool:
    """An SDK tool with ``input_model`` as its input schema and ``output_model`` as its output."""
    bases: tuple[type[Any], ...] = (input_model, ArgModelBase)
    arg_model: type[ArgModelBase] = create_model(input_model.__name__, __base__=bases)

    async def call(ctx: ToolContext, **arguments: Any) -> Any:
        return await run(ctx, input_model.model_validate(arguments))

    return ModelTool(
        fn=call,
        name=name,
        title=title,
        description=description,
        parameters=arg_model.model_json_schema(by_alias=True),
        fn_metadata=FuncMetadata(arg_model=arg_model, output_model=output_model),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
        input_model=input_model,
    )


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    """The connection behind a request, or None when the SDK no longer exposes it."""
    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def _always() -> bool:
    return True


def response_heard(ctx: ToolContext) -> Callable[[], bool]:
    """A probe: can the client behind this request still hear it (its progress, its result)?

    Only a handshake-era (2025-11-25) streamable-HTTP request outlives the stream
    its answer goes on: when that stream drops, the SDK keeps serving the request
    and stores its messages, so that the client can resume it (a GET with
    ``Last-Event-ID``). Its session's transport holds a stream for the request
    exactly while someone listens, the POST's own response or a resumed GET; the
    probe looks there, each time it is called. Every other request is heard while
    it runs (the SDK cancels a 2026-07-28 request whose client left; stdio and SSE
    end with their connection), so for them, and if the SDK's internals are not
    where this looks, the probe always answers True: never less than before.
    """
    request = ctx.request_context
    connection = connection_of(request)
    session_id = connection.session_id if connection is not None else None
    if session_id is None or request.request_id is None:
        return _always
    try:
        manager = ctx.mcp_server.session_manager
    except (RuntimeError, ValueError):  # not served over streamable HTTP
        return _always
    instances = getattr(manager, "_server_instances", None)
    transport = instances.get(session_id) if isinstance(instances, dict) else None
    if not isinstance(transport, StreamableHTTPServerTransport):
        return _always
    if not isinstance(getattr(transport, "_request_streams", None), dict):
        return _always
    stream = str(request.request_id)  # the transport's key for the request's stream

    def heard() -> bool:
        streams = getattr(transport, "_request_streams", None)
        return not transport.is_terminated and isinstance(streams, dict) and stream in streams

    return heard
