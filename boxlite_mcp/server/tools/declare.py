"""How a tool is declared: a module-level async function under one decorator.

::

    tools = ToolGroup()

    @tools.tool(title="Show one box", read_only=True, description="...")
    async def box_info(call: ToolCall, args: BoxRefInput) -> BoxInfoResult: ...

The function's name is the tool's name, its ``args`` annotation the input model
(the input schema), its return annotation the output model (``Annotated[CallToolResult,
Model]`` when it builds the result itself). A description that depends on the
server's configuration is a function of the ``Services``. Handlers stay plain
functions: a test can import one and call it with a ``ToolCall``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from mcp_types import ToolAnnotations
from pydantic import BaseModel

from ..errors import tool_errors
from ..sdk import ModelTool, ToolContext, model_tool
from ..services import Services, ToolCall

Handler = Callable[[ToolCall, Any], Awaitable[Any]]
Description = str | Callable[[Services], str]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class ToolDef:
    """A declared tool, not yet bound to a server's services."""

    name: str
    title: str
    description: Description
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    read_only: bool
    destructive: bool
    idempotent: bool

    def bind(self, services: Services) -> ModelTool:
        """The SDK tool that runs this handler over ``services``."""
        description = self.description
        text = description(services) if callable(description) else description
        handler = self.handler

        async def run(ctx: ToolContext, args: BaseModel) -> Any:
            call = ToolCall(services, ctx)
            with tool_errors(call.boxes):
                return await handler(call, args)

        return model_tool(
            name=self.name,
            title=self.title,
            description=text.strip(),
            input_model=self.input_model,
            output_model=self.output_model,
            annotations=ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive and not self.read_only,
                idempotent_hint=self.idempotent or self.read_only,
                open_world_hint=False,
            ),
            run=run,
        )


def _models(handler: Handler) -> tuple[type[BaseModel], type[BaseModel]]:
    """(input model, output model) from the handler's annotations."""
    hints = get_type_hints(handler, include_extras=True)
    parameters = list(inspect.signature(handler).parameters)
    if len(parameters) != 2:
        raise TypeError(f"tool {handler.__name__} must take (call: ToolCall, args: <model>)")
    input_model, output = hints[parameters[1]], hints["return"]
    if get_origin(output) is Annotated:
        output = get_args(output)[1]
    for model in (input_model, output):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"tool {handler.__name__}: {model!r} is not a pydantic model")
    return input_model, output


class ToolGroup:
    """The tools of one module, in the order they are declared."""

    def __init__(self) -> None:
        self.tools: list[ToolDef] = []

    def tool(
        self,
        *,
        title: str,
        description: Description,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
    ) -> Callable[[H], H]:
        """Declare the decorated function as the tool of the same name."""

        def declare(handler: H) -> H:
            input_model, output_model = _models(handler)
            self.tools.append(
                ToolDef(
                    name=handler.__name__,
                    title=title,
                    description=description,
                    input_model=input_model,
                    output_model=output_model,
                    handler=handler,
                    read_only=read_only,
                    destructive=destructive,
                    idempotent=idempotent,
                )
            )
            return handler

        return declare
