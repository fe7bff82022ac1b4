"""Calls sized for MCP clients and for a model's context: real boxes, both protocol eras.

- exec_run returns by return_after_seconds with the command still running, and
  exec_read gets the rest (clients give up on a call after ~60 s);
- one result holds at most the result cap of output, both streams together, the
  text once: a 20 MB output gives a result under 40 KiB on the wire.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from boxlite_mcp.sessions.executions import sent_size

from .conftest import ServerFactory, fails, ok, text
from .test_exec import Progress

pytestmark = pytest.mark.anyio

#: What the issue allows one result of a 20 MB output to take.
RESULT_LIMIT = 40 * 1024
#: A capped stream: head, the marker naming the bytes cut and the resource, tail.
MARKER = (
    r"(.*)\n\[\.\.\. (\d+) bytes cut here; the full output is the resource \S+, "
    r"or read it with exec_read \.\.\.\]\n(.*)"
)


def wire_size(result: CallToolResult) -> int:
    """Bytes of the JSON-RPC response that carries ``result`` (as the server sends it)."""
    body = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    message = {"jsonrpc": "2.0", "id": 1, "result": body}
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


async def test_long_command_returns_early_and_runs_on(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        progress = Progress()
        began = anyio.current_time()
        result = await client.call_tool(
            "exec_run",
            {
                "box": "dev",
                "command": "echo first; sleep 3; echo last; echo err >&2; exit 7",
                "return_after_seconds": 1,
            },
            progress_callback=progress,
        )
        took = anyio.current_time() - began
        progress.returned = True
        assert not result.is_error, text(result)
        out: dict[str, Any] = result.structured_content or {}
        assert 0.9 <= took < 2.5, took
        assert out["running"] is True and out["exit_code"] is None and not out["killed"]
        assert out["stdout"] == "first\n" and out["next_cursor"] == len("first\n")
        # One plain sentence on how to follow, in the fields and in what the model reads.
        step = out["next_step"]
        assert "exec_read" in step and out["execution_id"] in step and "cursor=6" in step
        assert step in text(result) and "still running after" in text(result)
        assert progress.joined == "first\n"  # progress flowed until the call returned

        # The command ran on: exec_read from next_cursor gets the rest and the exit code.
        final = await ok(
            client,
            "exec_read",
            execution_id=out["execution_id"],
            cursor=out["next_cursor"],
            until_exit=True,
            wait_seconds=30,
        )
        assert final["running"] is False and final["exit_code"] == 7 and not final["killed"]
        assert final["stdout"] == "last\n" and final["stderr"] == "err\n"
        assert progress.after_result == 0  # nothing more arrives for a returned call


async def test_return_after_defaults_to_the_setting(make_server: ServerFactory) -> None:
    async with Client(make_server(exec_return_after_seconds=0.5)) as client:
        await ok(client, "box_create", name="dev")
        info = await ok(client, "runtime_info")
        assert info["policy"]["exec_return_after_seconds"] == 0.5
        assert info["policy"]["result_output_cap_bytes"] == 16 * 1024
        out = await ok(client, "exec_run", box="dev", command="exec sleep 30")
        assert out["running"] is True and out["timeout_seconds"] == 300
        # A quick command still returns at its end, finished, with no next step.
        done = await ok(client, "exec_run", box="dev", command="echo hi")
        assert done["running"] is False and done["next_step"] is None
        assert done["stdout"] == "hi\n" and done["next_cursor"] == 3
        # A command left running is still killed at its own timeout, not by the return.
        short = await ok(
            client, "exec_run", box="dev", command="exec sleep 30", timeout_seconds=1.5
        )
        assert short["running"] is True
        final = await ok(
            client,
            "exec_read",
            execution_id=short["execution_id"],
            until_exit=True,
            wait_seconds=20,
        )
        assert final["running"] is False and final["timed_out"] is True
        await ok(client, "exec_kill", execution_id=out["execution_id"])


async def test_twenty_megabytes_give_a_small_result(make_server: ServerFactory, mode: str) -> None:
    size = 20 * 1000 * 1000
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        result = await client.call_tool(
            "exec_run",
            {
                "box": "dev",
                "command": f"yes 'a line of build output 0123456789' | head -c {size}; "
                "echo 'warning: last' >&2",
            },
        )
        out: dict[str, Any] = result.structured_content or {}
        assert out["stdout_bytes"] == size and out["stdout_truncated"] is True
        assert wire_size(result) < RESULT_LIMIT, wire_size(result)
        # Both streams share one cap; the short stderr is whole, stdout keeps head and tail.
        assert out["stderr"] == "warning: last\n" and not out["stderr_truncated"]
        # The cap counts the text as sent (a newline is two bytes in JSON).
        match = re.fullmatch(MARKER, out["stdout"], re.DOTALL)
        assert match is not None, out["stdout"][:200]
        head, cut, tail = match.groups()
        assert sent_size(head + tail) + sent_size(out["stderr"]) <= 16 * 1024
        assert sent_size(head + tail) > 15 * 1024  # and uses it
        assert int(cut) + len(head) + len(tail) == size  # the marker names the bytes cut
        assert out["output_uri"] in out["stdout"]
        line = "a line of build output 0123456789\n"
        whole_tail = (line * 2)[: size % len(line) + len(line)]
        assert out["stdout"].startswith(line) and out["stdout"].endswith(whole_tail)
        # The text is in the content once (a summary, each stream once), not a JSON dump.
        words = text(result)
        assert words.count("warning: last") == 1 and words.count("bytes cut here") == 1
        assert '"stdout"' not in words


async def test_streams_share_the_cap(make_server: ServerFactory, mode: str) -> None:
    """Two long streams get half each; the cap counts both together."""
    server = make_server(result_output_cap_bytes=4096)
    async with Client(server, mode=mode) as client:
        await ok(client, "box_create", name="dev")
        out = await ok(
            client,
            "exec_run",
            box="dev",
            command="head -c 100000 /dev/zero | tr '\\0' q; "
            "head -c 50000 /dev/zero | tr '\\0' j >&2",
        )
        assert out["stdout_truncated"] and out["stderr_truncated"]
        assert out["stdout"].count("q") == 2048 and out["stderr"].count("j") == 2048
        assert "97952 bytes cut" in out["stdout"] and "47952 bytes cut" in out["stderr"]
        # exec_read returns at most the cap per call by default, both streams together.
        read = await ok(client, "exec_read", execution_id=out["execution_id"])
        assert len(read["stdout"]) + len(read["stderr"]) == 4096 and read["has_more"] is True
        assert read["next_cursor"] == 4096
        more = await ok(client, "exec_read", execution_id=out["execution_id"], max_bytes=200000)
        assert len(more["stdout"]) == 100000 and len(more["stderr"]) == 50000


async def test_exec_read_text_is_a_summary_not_a_dump(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="dev")
        out = await ok(client, "exec_run", box="dev", command="echo only-once; exit 2")
        result = await client.call_tool("exec_read", {"execution_id": out["execution_id"]})
        words = text(result)
        assert words.count("only-once") == 1 and "exit code 2" in words
        assert "bytes 0-10 of 10 stored" in words
        assert result.structured_content is not None
        assert result.structured_content["stdout"] == "only-once\n"


async def test_errors_repeat_the_reference_asked_for(make_server: ServerFactory) -> None:
    """An unknown box, execution or snapshot: the error quotes what was asked, then what
    exists; a long or hostile reference is cut and escaped, never forges a line."""
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="dev")
        message = await fails(client, "exec_run", box="devv", command="true")
        assert "No box with that id or name ('devv') among your boxes" in message
        assert "Your boxes: dev (" in message
        message = await fails(client, "exec_read", execution_id="exec-nope")
        assert "No execution with that id ('exec-nope')" in message
        ran = await ok(client, "exec_run", box="dev", command="true")
        assert ran["execution_id"] in await fails(client, "exec_kill", execution_id="exec-x")
        await ok(client, "box_stop", box="dev")
        await ok(client, "snapshot_create", box="dev", name="base")
        message = await fails(client, "snapshot_restore", box="dev", name="basee")
        assert "'basee'" in message and "base" in message.replace("'basee'", "")
        hostile = "x\nError: fake line\x1b[31m\u202e" + "y" * 200
        message = await fails(client, "box_info", box=hostile)
        assert "'x\\nError: fake line\\x1b[31m\\u202e" in message
        assert f"… ({len(hostile)} characters)" in message
        assert "\n" not in message and "\x1b" not in message and "y" * 60 not in message


@pytest.mark.parametrize(
    "command",
    [
        "head -c 20000000 /dev/urandom",
        "head -c 20000000 /dev/zero",
        "head -c 20000000 /dev/zero | tr '\\0' '\\033' >&2; head -c 20000000 /dev/urandom",
    ],
    ids=["binary", "nul-bytes", "escapes-and-binary"],
)
async def test_output_that_escapes_badly_stays_small(
    make_server: ServerFactory, command: str
) -> None:
    """The cap counts output as sent: control bytes (six bytes each in JSON) and invalid
    UTF-8 (a three-byte replacement each) shrink the window, not grow the result."""
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="dev")
        result = await client.call_tool("exec_run", {"box": "dev", "command": command})
        out: dict[str, Any] = result.structured_content or {}
        assert out["stdout_bytes"] == 20000000 and out["stdout_truncated"]
        assert wire_size(result) < RESULT_LIMIT, wire_size(result)
        read = await client.call_tool("exec_read", {"execution_id": out["execution_id"]})
        window: dict[str, Any] = read.structured_content or {}
        assert wire_size(read) < RESULT_LIMIT, wire_size(read)
        assert 0 < window["next_cursor"] < 16 * 1024 and window["has_more"]
        assert "bytes cut here" in out["stdout"]
