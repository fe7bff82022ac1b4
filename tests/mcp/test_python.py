"""python_run and python_reset through the SDK's real in-memory Client, on real bwrap boxes."""

from __future__ import annotations

import base64

import pytest
from mcp import Client

from tests.mcp.conftest import ServerFactory, fails, ok, text
from tests.mcp.test_exec import Progress
from tests.sessions.test_python_run import PNG_CELL, expected_png

pytestmark = pytest.mark.anyio


async def test_state_lasts_across_three_calls_and_reset_ends_it(
    make_server: ServerFactory,
) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        first = await ok(client, "python_run", box="py", code="x = 20")
        assert first["new_session"] and first["execution_count"] == 1
        await ok(client, "python_run", box="py", code="x += 1")
        third = await client.call_tool("python_run", {"box": "py", "code": "x * 2"})
        assert not third.is_error and third.structured_content is not None
        assert third.structured_content["result"] == "42"
        assert third.structured_content["execution_count"] == 3
        assert "=> 42" in text(third)
        reset = await ok(client, "python_reset", box="py")
        assert reset["session"] == "default"
        after = await ok(client, "python_run", box="py", code="x")
        assert after["new_session"] and after["error"]["type"] == "NameError"


async def test_progress_streams_from_a_slow_loop(make_server: ServerFactory) -> None:
    async with Client(make_server(progress_interval_seconds=0.05)) as client:
        await ok(client, "box_create", name="py")
        progress = Progress()
        code = (
            "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
        )
        result = await client.call_tool(
            "python_run", {"box": "py", "code": code}, progress_callback=progress
        )
        progress.returned = True
        assert not result.is_error
        assert progress.joined == "tick 0\ntick 1\ntick 2\n"
        assert len(progress.events) >= 2  # streamed while it ran, not one message at the end
        assert progress.after_result == 0


async def test_an_exception_is_error_in_the_result(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        result = await client.call_tool("python_run", {"box": "py", "code": "1 / 0"})
        assert not result.is_error  # the call worked; the cell raised
        out = result.structured_content
        assert out is not None and out["error"]["type"] == "ZeroDivisionError"
        assert "1 / 0" in out["error"]["traceback"]
        assert "ZeroDivisionError" in text(result)


async def test_png_is_image_content_and_svg_text(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        await ok(client, "python_run", box="py", code=PNG_CELL)
        svg = "class Svg:\n    def _repr_svg_(self):\n        return '<svg/>'\n"
        result = await client.call_tool(
            "python_run", {"box": "py", "code": svg + "display(Dot(), Svg())"}
        )
        assert not result.is_error
        images = [b for b in result.content if b.type == "image"]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data) == expected_png()
        assert any(b.type == "text" and b.text == "<svg/>" for b in result.content)
        assert result.structured_content is not None
        assert result.structured_content["images"][0] == {
            "mime_type": "image/png",
            "size_bytes": len(expected_png()),
        }


async def test_timeout_interrupt_keeps_state_and_a_killed_session_is_reported(
    make_server: ServerFactory,
) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        await ok(client, "python_run", box="py", code="kept = 'yes'")
        slow = await ok(
            client, "python_run", box="py", code="import time\ntime.sleep(60)", timeout_seconds=1
        )
        assert slow["timed_out"] and not slow["session_lost"]
        assert (await ok(client, "python_run", box="py", code="kept"))["result"] == "'yes'"
        stubborn = (
            "import time\nwhile True:\n    try:\n        time.sleep(5)\n"
            "    except KeyboardInterrupt:\n        pass\n"
        )
        killed = await client.call_tool(
            "python_run", {"box": "py", "code": stubborn, "timeout_seconds": 1}
        )
        out = killed.structured_content
        assert out is not None and out["session_lost"] and out["error"]["type"] == "SessionLost"
        assert "lost" in text(killed)
        fresh = await ok(client, "python_run", box="py", code="1 + 1")
        assert fresh["new_session"] and fresh["result"] == "2"


async def test_an_unknown_box_is_a_clear_error(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        message = await fails(client, "python_run", box="nope", code="1")
        assert "nope" in message


async def test_a_bad_session_name_is_a_clear_error(make_server: ServerFactory) -> None:
    # Raised inside the call's progress task group: it must still reach the model as
    # an error naming what was asked (found by python -m tools.fuzz_tools).
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        message = await fails(client, "python_run", box="py", code="1", session="no way")
        assert "'no way'" in message and "not valid" in message


async def test_box_stop_ends_its_sessions(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="py")
        await ok(client, "python_run", box="py", code="x = 1")
        await ok(client, "box_stop", box="py")
        after = await ok(client, "python_run", box="py", code="'x' in globals()")
        assert after["new_session"] and after["result"] == "False"
        assert not after["session_lost"]  # closed on purpose, not found dead mid-call
