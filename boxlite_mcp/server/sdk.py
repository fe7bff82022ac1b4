"""The one place that reaches into the MCP SDK's internals; tests/mcp/test_sdk.py pins them.

Two things the SDK (2.3) has no public API for:

- A tool whose input schema *is* a pydantic model (flat, unknown fields rejected)
  with argument errors that name each bad field. ``MCPServer.add_tool`` derives the
  schema from a function signature and reports a raw ``ValidationError``, so this
  subclasses its ``Tool`` and builds the ``FuncMetadata`` by hand.
- The connection behind a request (to learn its protocol version and to run code
  when a session ends): only the session's private ``_connection`` holds it.

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
