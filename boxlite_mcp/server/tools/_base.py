"""How a tool is declared: a pydantic input model, an output model, a handler.

The SDK derives a tool's input schema from a function signature; here the input
model *is* the schema (flat, unknown fields rejected), and argument errors come
back as one clear message naming each bad field and what to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.abc
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ValidationError, create_model
from pydantic_core import ErrorDetails

from ...runtime.base import Runtime
from ...runtime.types import BoxInfo
from ...sessions.executions import Executions
from ...sessions.paths import HostPaths
from ...sessions.registry import BoxEntry, Registry
from ...settings import Settings
from ..errors import tool_errors
from ..identity import Caller, caller
from ..models import BoxView, Lifetime

InputT = TypeVar("InputT", bound=BaseModel)
ToolContext = Context[Any, Any]


@dataclass
class LifespanState:
    """What one lifespan run gives its requests: where background tasks live."""

    task_group: anyio.abc.TaskGroup


@dataclass
class Services:
    """Everything the tools share; built once per server."""

    runtime: Runtime
    settings: Settings
    registry: Registry
    executions: Executions
    host_paths: HostPaths
    runtime_reason: str

    def caller(self, ctx: ToolContext) -> Caller:
        return caller(ctx.request_context, self.registry.end_session)

    def view(self, entry: BoxEntry, info: BoxInfo) -> BoxView:
        """A box as its owner sees it, lifetime included."""
        ttl = self.settings.box_idle_ttl_seconds
        if entry.persist:
            removed_when = "Only when you remove it with box_remove (persist is on)."
        elif entry.session is not None:
            removed_when = (
                f"When your session ends, after {ttl:g} s without use, or when the server stops."
            )
        else:
            removed_when = f"After {ttl:g} s without use, or when the server stops."
        network = info.network.mode == "enabled" if info.network is not None else None
        return BoxView(
            id=entry.id,
            name=entry.name,
            status=info.status,
            image=info.image,
            cpus=info.cpus,
            memory_mib=info.memory_mib,
            network_enabled=network,
            created_at=info.created_at,
            lifetime=Lifetime(
                persist=entry.persist,
                idle_ttl_seconds=None if entry.persist else ttl,
                idle_seconds=round(entry.idle_seconds(), 3),
                expires_in_seconds=self.registry.expires_in(entry),
                removed_when=removed_when,
            ),
        )

    async def box_view(self, entry: BoxEntry) -> BoxView:
        return self.view(entry, await entry.box.info())

    @staticmethod
    def task_group(ctx: ToolContext) -> anyio.abc.TaskGroup:
        state = ctx.request_context.lifespan_context
        if not isinstance(state, LifespanState):
            raise ToolError("The server is not running its lifespan; restart it.")
        return state.task_group


def _describe_error(error: ErrorDetails, fields: list[str]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where!r}: unknown argument (valid: {', '.join(fields) or 'none'})"
    if kind == "missing":
        return f"{where}: required, missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind.startswith("value_error") or not where:
        return f"{where + ': ' if where else ''}{message}"
    shown = repr(error.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{where}: {message} (got {shown})"


def argument_error(tool_name: str, model: type[BaseModel], exc: ValidationError) -> ToolError:
    fields = list(model.model_fields)
    lines = [_describe_error(error, fields) for error in exc.errors()[:10]]
    more = len(exc.errors()) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    bullet = "\n- ".join(lines)
    return ToolError(
        f"Invalid arguments for {tool_name}:\n- {bullet}\n"
        f"Fix them and call {tool_name} again; its input schema describes every argument."
    )


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


def make_tool(
    *,
    name: str,
    title: str,
    description: str,
    input_model: type[InputT],
    output_model: type[BaseModel],
    handler: Callable[[InputT, ToolContext], Awaitable[Any]],
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
) -> ModelTool:
    """Declare a tool: schemas from the models, errors translated, hints set."""
    bases: tuple[type[Any], ...] = (input_model, ArgModelBase)
    arg_model: type[ArgModelBase] = create_model(input_model.__name__, __base__=bases)

    async def call(ctx: ToolContext, **arguments: Any) -> Any:
        args = input_model.model_validate(arguments)
        with tool_errors():
            return await handler(args, ctx)

    metadata = FuncMetadata(arg_model=arg_model, output_model=output_model)
    return ModelTool(
        fn=call,
        name=name,
        title=title,
        description=description.strip(),
        parameters=arg_model.model_json_schema(by_alias=True),
        fn_metadata=metadata,
        is_async=True,
        context_kwarg="ctx",
        annotations=ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive if not read_only else False,
            idempotent_hint=idempotent or read_only,
            open_world_hint=False,
        ),
        input_model=input_model,
    )
