"""Generated bad arguments for every tool: each gives a clear isError, never a crash.

Arguments start from a valid call and get one mutation that breaks the tool's served
input schema (wrong type, out of range, unknown field, missing field), or are arbitrary
JSON objects; jsonschema confirms each is invalid before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import anyio
import anyio.from_thread
import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mcp import Client

from boxlite_mcp.server import build_server
from boxlite_mcp.settings import Settings
from tests.harness.bwrap import factory

from .test_surface import TOOLS

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


class Fuzzer:
    """A live server and client, driven from synchronous hypothesis tests via a portal."""

    def __init__(
        self,
        portal: anyio.from_thread.BlockingPortal,
        client: Client,
        valid: dict[str, dict[str, Any]],
    ):
        self.portal = portal
        self.client = client
        self.valid = valid
        tools = portal.call(client.list_tools).tools
        self.schemas = {t.name: t.input_schema for t in tools}

    def call(self, name: str, arguments: Any) -> tuple[bool, str]:
        async def go() -> tuple[bool, str]:
            with anyio.fail_after(30):
                result = await self.client.call_tool(name, arguments)
            return bool(result.is_error), "\n".join(getattr(b, "text", "") for b in result.content)

        return self.portal.call(go)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    home = tmp_path_factory.mktemp("fuzz")
    host = home / "host"
    host.mkdir()
    with anyio.from_thread.start_blocking_portal() as portal, ExitStack() as stack:
        runtime = stack.enter_context(portal.wrap_async_context_manager(factory(home)))
        server = build_server(runtime, Settings(allow_paths=[host], exec_default_timeout_seconds=5))
        client = stack.enter_context(portal.wrap_async_context_manager(Client(server)))

        async def prepare() -> str:
            await client.call_tool("box_create", {"name": "dev"})
            started = await client.call_tool("exec_start", {"box": "dev", "command": "sleep 0"})
            assert started.structured_content is not None
            return str(started.structured_content["execution_id"])

        exec_id = portal.call(prepare)
        box = {"box": "dev"}
        execution = {"execution_id": exec_id}
        valid: dict[str, dict[str, Any]] = {
            "box_create": {"name": "fuzzbox"},
            "box_list": {},
            "box_info": box,
            "box_start": box,
            "box_stop": box,
            "box_remove": box,
            "box_clone": {**box, "name": "fuzzclone"},
            "box_export": {**box, "host_path": "dev.boxlite"},
            "box_import": {"host_path": "dev.boxlite"},
            "box_expose": {**box, "port": 8080},
            "exec_run": {**box, "command": "true"},
            "exec_start": {**box, "command": "true"},
            "exec_read": execution,
            "exec_write": {**execution, "text": "x"},
            "exec_signal": execution,
            "exec_kill": execution,
            "file_read": {**box, "path": "/etc/hostname"},
            "file_write": {**box, "path": "/tmp/fuzz", "content": "x"},
            "copy_in": {**box, "host_path": "in", "box_path": "/tmp/in"},
            "copy_out": {**box, "box_path": "/tmp/fuzz", "host_path": "out"},
            "snapshot_create": {**box, "name": "s"},
            "snapshot_list": box,
            "snapshot_restore": {**box, "name": "s"},
            "snapshot_remove": {**box, "name": "s"},
            "box_metrics": box,
            "runtime_info": {},
            "python_run": {**box, "code": "1 + 1"},
            "python_reset": box,
        }
        assert set(valid) == TOOLS
        yield Fuzzer(portal, client, valid)


@st.composite
def bad_arguments(draw: st.DrawFn, base: dict[str, Any], schema: dict[str, Any]) -> Any:
    properties = list(schema.get("properties", {}))
    choice = draw(st.sampled_from(["retype", "unknown", "drop", "random", "not-an-object"]))
    args = dict(base)
    if choice == "retype" and properties:
        args[draw(st.sampled_from(properties))] = draw(json_values)
    elif choice == "unknown":
        args[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in properties))] = draw(
            json_values
        )
    elif choice == "drop" and base:
        del args[draw(st.sampled_from(sorted(base)))]
    elif choice == "not-an-object":
        return draw(st.lists(json_values, max_size=3) | st.text(max_size=10) | st.integers())
    else:
        args = draw(
            st.dictionaries(st.sampled_from([*properties, "x", ""]), json_values, max_size=5)
        )
    return args


@pytest.mark.parametrize("tool", sorted(TOOLS))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_bad_arguments_give_clear_errors(fuzzer: Fuzzer, tool: str, data: st.DataObject) -> None:
    schema = fuzzer.schemas[tool]
    arguments = data.draw(bad_arguments(fuzzer.valid[tool], schema))
    assume(not jsonschema.Draft202012Validator(schema).is_valid(arguments))
    if not isinstance(arguments, dict):
        # The client library refuses non-object arguments itself; the server is what we test.
        arguments = {"arguments": arguments}
        assume(not jsonschema.Draft202012Validator(schema).is_valid(arguments))
    is_error, message = fuzzer.call(tool, arguments)
    crash = f"Error executing tool {tool}"
    assert message.strip() != crash, f"{tool} crashed on {arguments!r}"
    assert "Traceback" not in message
    if is_error:
        assert len(message) > 20, message
    # Lenient coercions (e.g. "5" for an int) may succeed; anything else must be refused
    # by argument validation, naming what is wrong.
    if is_error and message.startswith("Invalid arguments"):
        assert f"for {tool}:" in message and "call" in message
