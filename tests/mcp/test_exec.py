"""exec_run and friends end to end: real boxes, real MCP clients in both protocol eras."""

from __future__ import annotations

import tracemalloc
from typing import Any

import anyio
import pytest
from mcp import Client

from .conftest import ServerFactory, fails, ok, text

pytestmark = pytest.mark.anyio


class Progress:
    """Collects progress notifications and whether the call had returned yet."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []
        self.after_result = 0
        self.returned = False

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if self.returned:
            self.after_result += 1
        self.events.append((progress, message or ""))

    @property
    def joined(self) -> str:
        return "".join(message for _, message in sorted(self.events))


async def test_shell_command_result_and_streamed_progress(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        progress = Progress()
        result = await client.call_tool(
            "exec_run",
            {"box": "dev", "command": "echo one; echo two >&2; printf 'three\\n'; exit 3"},
            progress_callback=progress,
        )
        progress.returned = True
        assert not result.is_error
        out = result.structured_content
        assert out is not None
        assert out["exit_code"] == 3 and out["success"] is False
        assert out["stdout"] == "one\nthree\n" and out["stderr"] == "two\n"
        assert not out["timed_out"] and not out["killed"] and not out["running"]
        assert out["stdout_bytes"] == 10 and out["stderr_bytes"] == 4
        assert out["output_uri"] == f"boxlite://executions/{out['execution_id']}/output"
        # The model-facing text carries the same facts, and a link to the full output.
        assert "exit code 3" in text(result) and out["output_uri"] in text(result)
        assert any(getattr(b, "type", "") == "resource_link" for b in result.content)
        # Progress: increasing byte counts, all the output in order, stderr marked.
        progresses = [p for p, _ in progress.events]
        assert progresses == sorted(progresses) and len(set(progresses)) == len(progresses)
        assert progresses[-1] == 14
        lines = progress.joined.splitlines()  # each stream in order; streams may interleave
        assert [line for line in lines if not line.startswith("[stderr] ")] == ["one", "three"]
        assert [line for line in lines if line.startswith("[stderr] ")] == ["[stderr] two"]
        assert progress.after_result == 0


async def test_argv_env_workdir_and_stdin(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        out = await ok(
            client,
            "exec_run",
            box="dev",
            argv=["sh", "-c", 'printf "%s|%s|" "$GREETING" "$(pwd)"; cat', "ignored"],
            env={"GREETING": "hello world"},
            working_dir="/tmp",
            stdin="from stdin",
        )
        assert out["stdout"] == "hello world|/tmp|from stdin"
        # argv is exact: no shell expansion of the arguments themselves.
        out = await ok(client, "exec_run", box="dev", argv=["echo", "$HOME", "*"])
        assert out["stdout"] == "$HOME *\n"
        # Without stdin the command sees EOF rather than waiting forever.
        out = await ok(client, "exec_run", box="dev", command="cat; echo done", timeout_seconds=20)
        assert out["stdout"] == "done\n" and not out["timed_out"]


async def test_output_is_live_and_cancel_kills_the_process(
    make_server: ServerFactory, mode: str
) -> None:
    """The first chunk arrives while the command runs; cancelling the call kills it in the box."""
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        seen = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message and "started" in message:
                seen.set()

        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await client.call_tool(
                    "exec_run",
                    {
                        "box": "dev",
                        "command": "echo started; exec sleep 1000",
                        "timeout_seconds": 600,
                    },
                    progress_callback=on_progress,
                )

            tg.start_soon(run)
            with anyio.fail_after(30):  # would hang if output were held until exit
                await seen.wait()
            tg.cancel_scope.cancel()

        for _ in range(100):
            out = await ok(client, "exec_run", box="dev", command="ps -eo args")
            if "sleep 1000" not in out["stdout"]:
                break
            await anyio.sleep(0.1)
        assert "sleep 1000" not in out["stdout"]


async def test_timeout_kills_and_says_so(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        out = await ok(
            client, "exec_run", box="dev", command="echo before; exec sleep 60", timeout_seconds=1
        )
        assert out["timed_out"] is True and out["success"] is False
        assert out["stdout"] == "before\n" and out["timeout_seconds"] == 1
        ps = await ok(client, "exec_run", box="dev", command="ps -eo args")
        assert "sleep 60" not in ps["stdout"]


async def test_timeout_is_capped_by_the_server_maximum(make_server: ServerFactory) -> None:
    server = make_server(exec_default_timeout_seconds=5, exec_max_timeout_seconds=7)
    async with Client(server) as client:
        await ok(client, "box_create", name="dev")
        assert (await ok(client, "exec_run", box="dev", command="true"))["timeout_seconds"] == 5
        out = await ok(client, "exec_run", box="dev", command="true", timeout_seconds=900)
        assert out["timeout_seconds"] == 7


async def test_large_output_is_bounded(make_server: ServerFactory, mode: str) -> None:
    """50 MiB through exec_run: few notifications, capped result, full resource, little memory."""
    size = 50 * 1024 * 1024
    server = make_server()
    async with Client(server, mode=mode) as client:
        await ok(client, "box_create", name="dev")
        count = 0
        streamed = 0
        last = 0.0

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            nonlocal count, streamed, last
            assert progress > last
            count, streamed, last = count + 1, streamed + len(message or ""), progress

        tracemalloc.start()
        try:
            result = await client.call_tool(
                "exec_run",
                {"box": "dev", "command": f"head -c {size} /dev/zero | tr '\\0' a"},
                progress_callback=on_progress,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out: dict[str, Any] = result.structured_content or {}
        assert out["exit_code"] == 0 and out["stdout_bytes"] == size
        assert out["stdout_truncated"] is True
        assert out["stdout"].startswith("aaaa") and out["stdout"].endswith("aaaa")
        assert len(out["stdout"]) < 16 * 1024 + 500
        assert f"{size - 16 * 1024} bytes cut" in out["stdout"]
        assert streamed == size and last == size
        assert count <= size // (16 * 1024)  # coalesced: never one per pipe read
        assert peak < 32 * 1024 * 1024  # the output is spooled, not held
        # The whole output is there as a resource.
        contents = await client.read_resource(out["output_uri"])
        body = contents.contents[0]
        assert len(getattr(body, "text", "")) == size


async def test_start_read_write_signal_kill(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        started = await ok(
            client,
            "exec_start",
            box="dev",
            command='while read line; do echo "got $line"; done; echo bye',
            keep_stdin_open=True,
        )
        exec_id = started["execution_id"]
        assert started["stdin_open"] is True
        await ok(client, "exec_write", execution_id=exec_id, text="a\nb\n")
        read = await ok(client, "exec_read", execution_id=exec_id, wait_seconds=10)
        cursor = read["next_cursor"]
        collected = read["stdout"]
        while collected.count("got") < 2:
            read = await ok(
                client, "exec_read", execution_id=exec_id, cursor=cursor, wait_seconds=10
            )
            cursor, collected = read["next_cursor"], collected + read["stdout"]
        assert collected == "got a\ngot b\n" and read["running"] is True
        closed = await ok(client, "exec_write", execution_id=exec_id, close=True)
        assert closed["stdin_closed"] is True
        final = await ok(
            client,
            "exec_read",
            execution_id=exec_id,
            cursor=cursor,
            wait_seconds=20,
            until_exit=True,
        )
        assert final["running"] is False and final["exit_code"] == 0 and final["stdout"] == "bye\n"
        assert "stdin" in await fails(client, "exec_write", execution_id=exec_id, text="late")
        # Reading from 0 returns everything again.
        whole = await ok(client, "exec_read", execution_id=exec_id)
        assert whole["stdout"] == "got a\ngot b\nbye\n" and whole["has_more"] is False

        # A signal by name ends a program that does not trap it.
        sleeper = await ok(client, "exec_start", box="dev", command="exec sleep 300")
        signalled = await ok(
            client, "exec_signal", execution_id=sleeper["execution_id"], signal="INT"
        )
        assert signalled["signal"] == 2
        done = await ok(
            client,
            "exec_read",
            execution_id=sleeper["execution_id"],
            wait_seconds=20,
            until_exit=True,
        )
        assert done["running"] is False and done["signal"] == 2

        # exec_kill ends it for good; killing again is harmless.
        sleeper = await ok(client, "exec_start", box="dev", command="exec sleep 300")
        killed = await ok(client, "exec_kill", execution_id=sleeper["execution_id"])
        assert killed["running"] is False
        again = await ok(client, "exec_kill", execution_id=sleeper["execution_id"])
        assert "already finished" in again["message"]
        state = await ok(client, "exec_read", execution_id=sleeper["execution_id"])
        assert state["killed"] is True and state["success"] is False


async def test_exec_errors_are_actionable(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="dev")
        message = await fails(client, "exec_run", box="nope", command="true")
        assert "No box with that id or name" in message and "dev" in message
        message = await fails(client, "exec_run", box="dev")
        assert "exactly one of command" in message
        message = await fails(client, "exec_run", box="dev", command="x", argv=["x"])
        assert "exactly one of command" in message
        message = await fails(client, "exec_read", execution_id="exec-0000")
        assert "No execution with that id" in message
        message = await fails(client, "exec_signal", execution_id="exec-0000", signal="NOPE")
        assert "No execution" in message
        sleeper = await ok(client, "exec_start", box="dev", command="exec sleep 300")
        message = await fails(
            client, "exec_signal", execution_id=sleeper["execution_id"], signal="NOPE"
        )
        assert "Unknown signal" in message
        await ok(client, "exec_kill", execution_id=sleeper["execution_id"])
        message = await fails(
            client, "exec_write", execution_id=sleeper["execution_id"], data_base64="%%%"
        )
        assert "base64" in message


async def test_output_beyond_the_store_cap_is_counted_not_kept(make_server: ServerFactory) -> None:
    server = make_server(stored_output_cap_bytes=1024, result_output_cap_bytes=1024)
    async with Client(server) as client:
        await ok(client, "box_create", name="dev")
        progress = Progress()
        result = await client.call_tool(
            "exec_run",
            {"box": "dev", "command": "head -c 5000 /dev/zero | tr '\\0' b"},
            progress_callback=progress,
        )
        out = result.structured_content or {}
        assert out["stdout_bytes"] == 5000 and out["stdout_truncated"] is True
        assert progress.events[-1][0] == 5000
        assert progress.joined.startswith("b" * 1024) and "3976 more bytes" in progress.joined
        read = await ok(client, "exec_read", execution_id=out["execution_id"], max_bytes=4096)
        assert read["dropped_bytes"] == 3976 and read["stdout"] == "b" * 1024
        assert read["total_bytes"] == 5000 and read["has_more"] is False
        body = (await client.read_resource(out["output_uri"])).contents[0]
        assert "3976 more bytes" in getattr(body, "text", "")
