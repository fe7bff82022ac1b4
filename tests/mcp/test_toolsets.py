"""Toolsets (``--tools``): ``core`` is a small working loop, a list is exactly that list.

The real server over a real bwrap runtime, through the SDK's in-memory ``Client``.
The selection rule itself (``server/toolsets.py``) is tested on its own first.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcp import Client

from boxlite_mcp.server.build import tool_names
from boxlite_mcp.server.toolsets import CORE_TOOLS, MAX_CORE, ToolsetError, select

from .conftest import ServerFactory, ok

pytestmark = pytest.mark.anyio

AVAILABLE = ["box_create", "box_list", "exec_run", "copy_in", "snapshot_list"]


def test_all_is_every_tool_in_order() -> None:
    assert select("all", AVAILABLE) == AVAILABLE
    assert select(" all ", AVAILABLE) == AVAILABLE


def test_core_skips_core_names_this_build_lacks() -> None:
    assert select("core", AVAILABLE) == ["box_create", "box_list", "exec_run"]


def test_a_list_keeps_registration_order_and_may_extend_core() -> None:
    assert select("snapshot_list, box_list", AVAILABLE) == ["box_list", "snapshot_list"]
    assert select("copy_in,core", AVAILABLE) == ["box_create", "box_list", "exec_run", "copy_in"]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("exec_rum", "no tool 'exec_rum' (did you mean exec_run?)"),
        ("box_list,nope,zilch", "no tools 'nope', 'zilch'"),
        ("", "is empty"),
        (" , ", "is empty"),
        ("all,box_list", "all stands alone"),
    ],
)
def test_bad_specs_say_what_and_list_the_valid_names(spec: str, complaint: str) -> None:
    with pytest.raises(ToolsetError) as caught:
        select(spec, AVAILABLE)
    message = str(caught.value)
    assert complaint in message
    assert "--tools / BOXLITE_MCP_TOOLS" in message
    assert "\n" not in message
    if "no tool" in message:
        assert message.endswith(", ".join(AVAILABLE))


def test_core_is_small_and_names_only_real_or_announced_tools() -> None:
    assert len(CORE_TOOLS) <= MAX_CORE == 12
    built = set(tool_names())
    assert {"box_create", "exec_run", "file_read", "file_write"} <= built
    # python_run/python_reset come with the Python session; every other core name exists.
    assert set(CORE_TOOLS) - built <= {"python_run", "python_reset"}


Step = Callable[[Client, dict[str, Any]], Awaitable[None]]


async def _box_create(client: Client, state: dict[str, Any]) -> None:
    state["box"] = (await ok(client, "box_create", name="core"))["box"]["id"]


async def _box_list(client: Client, state: dict[str, Any]) -> None:
    boxes = (await ok(client, "box_list"))["boxes"]
    assert [b["id"] for b in boxes] == [state["box"]]


async def _runtime_info(client: Client, state: dict[str, Any]) -> None:
    assert (await ok(client, "runtime_info"))["runtime"]


async def _file_write(client: Client, state: dict[str, Any]) -> None:
    result = await ok(client, "file_write", box="core", path="/tmp/note.txt", content="hi there")
    assert result["bytes_written"] == 8


async def _file_read(client: Client, state: dict[str, Any]) -> None:
    result = await ok(client, "file_read", box="core", path="/tmp/note.txt", encoding="base64")
    assert base64.b64decode(result["content"]) == b"hi there"


async def _exec_run(client: Client, state: dict[str, Any]) -> None:
    result = await ok(client, "exec_run", box="core", command="cat /tmp/note.txt; echo")
    assert result["exit_code"] == 0 and result["stdout"] == "hi there\n"


async def _exec_start(client: Client, state: dict[str, Any]) -> None:
    started = await ok(client, "exec_start", box="core", command="echo up; sleep 60")
    state["execution"] = started["execution_id"]


async def _exec_read(client: Client, state: dict[str, Any]) -> None:
    read = await ok(client, "exec_read", execution_id=state["execution"], wait_seconds=5)
    assert "up" in read["stdout"]


async def _exec_kill(client: Client, state: dict[str, Any]) -> None:
    killed = await ok(client, "exec_kill", execution_id=state["execution"])
    assert killed["execution_id"] == state["execution"]


async def _python_run(client: Client, state: dict[str, Any]) -> None:
    await ok(client, "python_run", box="core", code="x = 20")
    result = await ok(client, "python_run", box="core", code="print(x + 22)")
    assert "42" in result["stdout"]


async def _python_reset(client: Client, state: dict[str, Any]) -> None:
    await ok(client, "python_reset", box="core")


async def _box_remove(client: Client, state: dict[str, Any]) -> None:
    await ok(client, "box_remove", box="core")
    assert (await ok(client, "box_list"))["boxes"] == []


#: One use of every core tool, in an order where each step's inputs exist.
CORE_LOOP: dict[str, Step] = {
    "box_create": _box_create,
    "box_list": _box_list,
    "runtime_info": _runtime_info,
    "file_write": _file_write,
    "file_read": _file_read,
    "exec_run": _exec_run,
    "exec_start": _exec_start,
    "exec_read": _exec_read,
    "exec_kill": _exec_kill,
    "python_run": _python_run,
    "python_reset": _python_reset,
    "box_remove": _box_remove,
}


async def test_core_lists_at_most_12_tools_and_each_works(
    make_server: ServerFactory, mode: str
) -> None:
    assert set(CORE_LOOP) == set(CORE_TOOLS)
    async with Client(make_server(tools="core"), mode=mode) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert 8 <= len(listed) <= 12
        assert set(listed) <= set(CORE_TOOLS)
        assert "only these tools: " + ", ".join(listed) in (client.instructions or "")
        state: dict[str, Any] = {}
        for name, step in CORE_LOOP.items():
            if name in listed:
                await step(client, state)
        refused = await client.call_tool("snapshot_list", {"box": "core"})
        assert refused.is_error


async def test_a_list_offers_exactly_those_tools(make_server: ServerFactory) -> None:
    async with Client(make_server(tools="box_list,runtime_info")) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == ["box_list", "runtime_info"]
        assert (await ok(client, "box_list"))["boxes"] == []
        assert (await client.call_tool("box_create", {})).is_error


async def test_all_keeps_the_full_surface_and_instructions(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == tool_names()
        assert "only these tools" not in (client.instructions or "")


async def test_build_server_refuses_an_unknown_tool(make_server: ServerFactory) -> None:
    with pytest.raises(ToolsetError, match="no tool 'box_destroy'"):
        make_server(tools="box_destroy")
