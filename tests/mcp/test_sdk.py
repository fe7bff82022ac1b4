"""What ``boxlite_mcp/server/sdk.py`` relies on in the MCP SDK's internals, pinned.

If an SDK upgrade moves any of these, this file fails first and says which; the
rest of the suite would only show its symptoms (a schema, an error message, or a
session's boxes outliving it).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from boxlite_mcp.server.sdk import ToolContext, connection_of, model_tool

pytestmark = pytest.mark.anyio


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    word: str = Field(min_length=1, description="What to echo.")
    times: int = Field(default=1, ge=1, le=3)


class EchoOutput(BaseModel):
    echoed: str
    had_connection: bool
    protocol_version: str | None


async def echo(ctx: ToolContext, args: BaseModel) -> EchoOutput:
    assert isinstance(args, EchoInput)
    connection = connection_of(ctx.request_context)
    return EchoOutput(
        echoed=" ".join([args.word] * args.times),
        had_connection=connection is not None,
        protocol_version=connection.protocol_version if connection else None,
    )


def server() -> MCPServer[Any]:
    tool = model_tool(
        name="echo",
        title="Echo",
        description="Echo a word.",
        input_model=EchoInput,
        output_model=EchoOutput,
        annotations=ToolAnnotations(title="Echo", read_only_hint=True),
        run=echo,
    )
    return MCPServer("sdk-pins", tools=[tool])


def test_the_tool_fields_and_run_signature_we_fill_exist() -> None:
    fields = set(Tool.model_fields)
    wanted = {"fn", "name", "title", "description", "parameters", "fn_metadata", "is_async"}
    assert wanted | {"context_kwarg", "annotations"} <= fields
    assert list(inspect.signature(Tool.run).parameters) == [
        "self",
        "arguments",
        "context",
        "convert_result",
    ]
    assert {"arg_model", "output_model"} <= set(FuncMetadata.model_fields)
    assert callable(FuncMetadata.pre_parse_json)
    assert callable(ArgModelBase.model_dump_one_level)


def test_the_private_connection_attribute_is_still_where_we_look() -> None:
    """``ServerSession._connection``; the live check is in the next test."""
    for attribute in ("protocol_version", "state", "exit_stack"):
        assert attribute in inspect.getsource(Connection), attribute


def test_the_transport_internals_response_heard_reads_are_still_there() -> None:
    """The session manager's ``_server_instances`` and each transport's
    ``_request_streams`` (keyed by ``str(request id)``, re-keyed by a resume); the
    live check is ``tests/transport/test_heard.py``."""
    assert "self._server_instances[session_id] = http_transport" in inspect.getsource(
        StreamableHTTPSessionManager
    )
    transport = inspect.getsource(StreamableHTTPServerTransport)
    assert "request_id = str(message.id)" in transport
    assert "self._request_streams[request_id] = " in transport  # the POST's stream
    assert "self._request_streams[stream_id] = " in transport  # a resumed GET's
    assert isinstance(StreamableHTTPServerTransport.is_terminated, property)


async def test_a_model_tool_has_the_models_schemas_and_clear_argument_errors() -> None:
    async with Client(server()) as client:
        (listed,) = (await client.list_tools()).tools
        assert listed.input_schema["additionalProperties"] is False
        assert set(listed.input_schema["properties"]) == {"word", "times"}
        assert listed.output_schema is not None
        assert set(listed.output_schema["properties"]) == {
            "echoed",
            "had_connection",
            "protocol_version",
        }

        bad = await client.call_tool("echo", {"word": "", "colour": "red"})
        assert bad.is_error
        message = "\n".join(getattr(block, "text", "") for block in bad.content)
        assert "Invalid arguments for echo" in message
        assert "'colour': unknown argument (valid: word, times)" in message
        assert "word:" in message

        good = await client.call_tool("echo", {"word": "hi", "times": 2})
        assert not good.is_error and good.structured_content is not None
        assert good.structured_content["echoed"] == "hi hi"


async def test_the_connection_behind_a_request_is_found() -> None:
    """Without it no session would ever end its boxes (they would wait for the idle TTL)."""
    async with Client(server()) as client:
        result = await client.call_tool("echo", {"word": "x"})
    assert result.structured_content is not None
    assert result.structured_content["had_connection"] is True
    assert result.structured_content["protocol_version"]
