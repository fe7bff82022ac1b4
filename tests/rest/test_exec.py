"""Executions over both transports: the Execution contract, stdin, signals, resuming."""

from __future__ import annotations

import asyncio
import logging

import pytest

from boxlite_mcp.runtime.base import UNREAD_OUTPUT_LIMIT
from boxlite_mcp.runtime.errors import (
    InvalidStateError,
    NotFoundError,
    UnsupportedError,
)
from boxlite_mcp.runtime.rest import RestBox, RestRuntime
from boxlite_mcp.runtime.rest.execution import RestExecution
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest

from .conftest import running
from .fake import FakeBoxlite

pytestmark = pytest.mark.anyio

SCRIPT = [
    ("stdout", b"one\n"),
    ("stderr", b"err\n"),
    ("stdout", bytes(range(256))),
    ("stderr", b""),
    ("stdout", b"three\n"),
]


async def start(runtime: RestRuntime, command: str, *args: str, **fields: object) -> RestExecution:
    box = await runtime.create(BoxOptions())
    return await box.exec(ExecRequest(command=command, args=list(args), **fields))  # type: ignore[arg-type]


async def collect(execution: RestExecution) -> list[tuple[str, bytes]]:
    chunks: list[tuple[str, bytes]] = []
    async for chunk in execution.output():
        if chunks and chunks[-1][0] == chunk.stream:
            chunks[-1] = (chunk.stream, chunks[-1][1] + chunk.data)
        else:
            chunks.append((chunk.stream, chunk.data))
    return chunks


def merged(script: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for stream, data in script:
        if not data:
            continue
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + data)
        else:
            out.append((stream, data))
    return out


async def test_output_arrives_in_order_binary_safe(generation: str) -> None:
    fake = FakeBoxlite(script=SCRIPT, exit_code=3)
    async with running(fake, generation) as runtime:
        execution = await start(runtime, "run")
        assert await collect(execution) == merged(SCRIPT)
        result = await execution.wait()
    assert result.exit_code == 3 and result.duration_ms is not None


async def test_wait_works_many_times_from_many_tasks(generation: str) -> None:
    async with running(FakeBoxlite(script=SCRIPT), generation) as runtime:
        execution = await start(runtime, "run")
        early = await asyncio.gather(*(execution.wait() for _ in range(5)))
        await collect(execution)
        late = await execution.wait()
    assert {r.exit_code for r in [*early, late]} == {0}


async def test_output_can_be_taken_once(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        execution = await start(runtime, "echo", "hi")
        execution.output()
        with pytest.raises(InvalidStateError):
            execution.output()
        await execution.wait()


async def test_unread_output_keeps_only_the_earliest_limit(generation: str) -> None:
    big = [("stdout", bytes([65 + i]) * (1024 * 1024)) for i in range(10)]
    async with running(FakeBoxlite(script=big), generation) as runtime:
        execution = await start(runtime, "spew")
        result = await execution.wait()  # nobody reads: the process still ends
        got = b"".join([chunk.data async for chunk in execution.output()])
    assert result.exit_code == 0
    assert got == b"".join(data for _, data in big)[:UNREAD_OUTPUT_LIMIT]


async def test_stdin_is_written_then_closed(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        execution = await start(runtime, "cat")
        await execution.write_stdin(b"hello ")
        await execution.write_stdin(b"world")
        await execution.close_stdin()
        await execution.close_stdin()  # idempotent
        with pytest.raises(InvalidStateError):
            await execution.write_stdin(b"late")
        assert await collect(execution) == [("stdout", b"hello world")]
        assert (await execution.wait()).exit_code == 0
    (state,) = fake.executions.values()
    assert b"".join(state.stdin) == b"hello world" and state.stdin_closed
    if generation == "0.9":
        assert fake.recorder is not None
        inputs = fake.recorder.matching("POST", "/input")
        assert [r.header("x-close-stdin") for r in inputs] == [None, None, "true"]
        assert inputs[-1].body == b""
        assert {r.header("content-type") for r in inputs} == {"application/octet-stream"}


async def test_signal_and_kill(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        first = await start(runtime, "sleep")
        await first.signal(15)
        assert (await first.wait()).exit_code == -15
        await first.signal(15)  # already exited: no error
        await first.kill()
        second = await start(runtime, "sleep")
        await second.kill()
        assert (await second.wait()).exit_code == -9
    assert fake.recorder is not None
    if generation == "0.9":
        bodies = [r.body for r in fake.recorder.matching("POST", "/signal")]
        assert bodies == [b'{"signal":15}', b'{"signal":9}']
    else:
        assert len(fake.recorder.matching("DELETE", "/executions/" + second.id)) == 1
        assert len(fake.recorder.matching("POST", "/signal")) == 1


async def test_resize_needs_a_tty(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        plain = await start(runtime, "sleep")
        assert fake.recorder is not None
        before = len(fake.recorder.requests)
        with pytest.raises(InvalidStateError):
            await plain.resize(80, 24)
        assert len(fake.recorder.requests) == before
        tty = await start(runtime, "sleep", tty=True)
        await tty.resize(120, 40)
        await plain.kill()
        await tty.kill()
    (call,) = fake.recorder.matching("POST", "/resize")
    assert call.body == b'{"cols":120,"rows":40}'


async def test_a_timeout_is_reported_as_timed_out(generation: str) -> None:
    async with running(FakeBoxlite(), generation) as runtime:
        execution = await start(runtime, "timeout", timeout_seconds=0.5)
        result = await execution.wait()
    assert result.timed_out and result.exit_code == -9


async def test_the_exec_request_carries_only_what_was_set(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions())
        await (await box.exec(ExecRequest(command="true"))).wait()
        await (
            await box.exec(
                ExecRequest(
                    command="ls", args=["-l"], env={"A": "1"}, working_dir="/srv", timeout_seconds=5
                )
            )
        ).wait()
        assert fake.recorder is not None
        before = len(fake.recorder.requests)
        with pytest.raises(UnsupportedError):
            await box.exec(ExecRequest(command="id", user="nobody"))
        assert len(fake.recorder.requests) == before
    bodies = [r.body for r in fake.recorder.matching("POST", "/exec")]
    assert bodies[0] == b'{"command":"true"}'
    assert bodies[1] == (
        b'{"command":"ls","args":["-l"],"env":{"A":"1"},"timeout_seconds":5.0,"working_dir":"/srv"}'
    )


@pytest.mark.parametrize("abort", [False, True])
async def test_cut_streams_resume_without_loss_or_repeats(generation: str, abort: bool) -> None:
    script = [("stdout" if i % 3 else "stderr", f"line {i}\n".encode()) for i in range(12)]
    fake = FakeBoxlite(script=script, cuts=[1, 2, 0, 4], abort_cuts=abort)
    async with running(fake, generation) as runtime:
        execution = await start(runtime, "run")
        assert await collect(execution) == merged(script)
        assert (await execution.wait()).exit_code == 0
    assert fake.recorder is not None
    if generation == "0.9":
        resumes = [r.header("last-event-id") for r in fake.recorder.matching("GET", "/output")]
        assert resumes == [None, "1", "3", "3", "7"]
    else:
        assert fake.attach_queries[0] == ""
        assert fake.attach_queries[1] == "stdout_offset=0&stderr_offset=7"
        assert len(fake.attach_queries) == 5


async def test_an_execution_the_server_forgot_is_a_clear_error(generation: str) -> None:
    script = [("stdout", b"a\n"), ("stdout", b"b\n")]
    fake = FakeBoxlite(script=script, cuts=[1], forget_on_cut=True)
    async with running(fake, generation) as runtime:
        execution = await start(runtime, "run")
        with pytest.raises(NotFoundError) as caught:
            await execution.wait()
        got = bytearray()
        with pytest.raises(NotFoundError):  # the reader gets what came, then the error
            async for chunk in execution.output():
                got += chunk.data
    assert "is gone" in caught.value.message and "run the command again" in caught.value.message
    assert got == b"a\n"


async def test_reading_slowly_never_loses_output(generation: str) -> None:
    script = [("stdout", bytes([i % 256]) * 300_000) for i in range(12)]
    async with running(FakeBoxlite(script=script), generation) as runtime:
        execution = await start(runtime, "spew")
        got = bytearray()
        async for chunk in execution.output():
            got += chunk.data
            await asyncio.sleep(0.01)
        assert bytes(got) == b"".join(data for _, data in script)


async def test_a_reader_that_stops_early_does_not_block_the_execution(generation: str) -> None:
    script = [("stdout", b"x" * 500_000) for _ in range(10)]
    async with running(FakeBoxlite(script=script), generation) as runtime:
        execution = await start(runtime, "spew")
        async for _ in execution.output():
            break
        assert (await asyncio.wait_for(execution.wait(), 10)).exit_code == 0


async def test_closing_the_runtime_ends_pending_executions(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        execution = await start(runtime, "sleep")
        await asyncio.sleep(0.05)
    with pytest.raises(Exception) as caught:
        await asyncio.wait_for(execution.wait(), 5)
    assert "closed" in str(caught.value)


async def test_without_event_ids_a_resume_never_repeats_output() -> None:
    """The fake replays everything on each connection when it sends no ids."""
    script = [("stdout", b"a"), ("stdout", b"b"), ("stdout", b"c")]
    fake = FakeBoxlite(script=script, cuts=[1], sse_ids=False)
    async with running(fake, "0.9") as runtime:
        execution = await start(runtime, "run")
        got = b"".join([chunk.data async for chunk in execution.output()])
        result = await execution.wait()
    assert got == b"a" and result.exit_code == 0
    assert result.error_message is not None and "not delivered" in result.error_message


async def test_a_server_ignoring_last_event_id_is_not_repeated() -> None:
    script = [("stdout", f"{i},".encode()) for i in range(6)]
    fake = FakeBoxlite(script=script, cuts=[2, 4], ignore_last_event_id=True)
    async with running(fake, "0.9") as runtime:
        execution = await start(runtime, "run")
        got = b"".join([chunk.data async for chunk in execution.output()])
        assert (await execution.wait()).exit_code == 0
    assert got == b"0,1,2,3,4,5,"


async def test_execs_reuse_the_keep_alive_connection() -> None:
    """0.9: exec and output share the pooled keep-alive connections. 0.10: the POSTs
    do, and each attach has its own (opened while the POST was in flight)."""
    for generation in ("0.9", "0.10"):
        fake = FakeBoxlite()
        async with running(fake, generation) as runtime:
            box = await runtime.create(BoxOptions())
            for _ in range(6):
                await (await box.exec(ExecRequest(command="true"))).wait()
        assert fake.recorder is not None
        posts = {r.client_port for r in fake.recorder.matching("POST", "/exec")}
        assert len(posts) <= 2, generation  # the last exec's stream may still be ending
        if generation == "0.9":
            outputs = {r.client_port for r in fake.recorder.matching("GET", "/output")}
            assert len(posts | outputs) <= 2
        else:
            attaches = [r.client_port for r in fake.recorder.requests if r.method == "WEBSOCKET"]
            assert len(set(attaches)) == 6 and not set(attaches) & posts


def _unused(box: RestBox) -> None:  # keeps the import for type checkers
    del box


logging.getLogger("boxlite_mcp").setLevel(logging.DEBUG)
