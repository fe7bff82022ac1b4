"""OutputPipe: the Execution output contract on its own (no runtime, no network in the way)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from boxlite_mcp.runtime.errors import InvalidStateError, NotFoundError
from boxlite_mcp.runtime.shared.output import OutputPipe
from boxlite_mcp.runtime.types import OutputChunk, StreamName

pytestmark = pytest.mark.anyio


async def produce(pipe: OutputPipe, stream: StreamName, pieces: list[bytes]) -> None:
    for piece in pieces:
        await pipe.put(stream, piece)
    pipe.close()


async def test_each_stream_keeps_its_order_and_the_stream_ends_when_all_producers_close() -> None:
    pipe = OutputPipe(producers=2)
    out = [f"o{i};".encode() for i in range(200)]
    err = [f"e{i};".encode() for i in range(200)]
    seen: list[OutputChunk] = []

    async def read() -> None:
        async for item in pipe.chunks():
            seen.append(item)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(produce, pipe, "stdout", out)
            tg.start_soon(produce, pipe, "stderr", err)
    assert [c.data for c in seen if c.stream == "stdout"] == out
    assert [c.data for c in seen if c.stream == "stderr"] == err


async def test_a_slow_reader_holds_producers_at_the_high_water_mark() -> None:
    pipe = OutputPipe(high_water=1000)
    sent = 0

    async def producer() -> None:
        nonlocal sent
        for _ in range(100):
            await pipe.put("stdout", b"x" * 100)
            sent += 100
        pipe.close()

    reader = pipe.chunks()  # a reader exists from here on
    task = asyncio.create_task(producer())
    await anyio.sleep(0.2)
    assert not task.done()
    assert sent <= 1000, "the producer ran ahead of the reader"
    received = 0
    with anyio.fail_after(10):
        async for item in reader:
            received += len(item.data)
    await task
    assert received == 10_000  # nothing dropped


async def test_unread_output_never_blocks_and_keeps_the_earliest_bytes() -> None:
    pipe = OutputPipe(high_water=40, unread_limit=250)
    with anyio.fail_after(5):  # producers never wait while nobody reads
        await produce(pipe, "stdout", [b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 100])
    data = b"".join([c.data async for c in pipe.chunks()])
    assert data == b"a" * 100 + b"b" * 100 + b"c" * 50
    assert pipe.discarded_bytes == 150


async def test_a_late_reader_after_truncation_gets_only_the_head() -> None:
    pipe = OutputPipe(unread_limit=10)
    await pipe.put("stdout", b"0123456789abc")  # over the limit: cut
    reader = pipe.chunks()
    await pipe.put("stdout", b"later")  # after the gap: not delivered
    pipe.close()
    assert [c.data async for c in reader] == [b"0123456789"]


async def test_a_late_reader_gets_kept_output_then_live_output() -> None:
    pipe = OutputPipe(unread_limit=10)
    await pipe.put("stdout", b"early")
    reader = pipe.chunks()
    assert (await anext(reader)).data == b"early"
    await pipe.put("stdout", b"x" * 50)  # a reader exists: nothing is cut now
    pipe.close()
    assert [c.data async for c in reader] == [b"x" * 50]


async def test_a_reader_that_leaves_releases_producers_for_good() -> None:
    pipe = OutputPipe(high_water=4)
    reader = pipe.chunks()
    await pipe.put("stdout", b"abcd")
    blocked = asyncio.create_task(pipe.put("stderr", b"efgh"))
    await asyncio.sleep(0.01)
    assert not blocked.done(), "the producer ran ahead of a reader that is behind"
    assert (await anext(reader)).data == b"abcd"
    await reader.aclose()  # type: ignore[attr-defined]
    with anyio.fail_after(5):
        await blocked
        for _ in range(50):
            await pipe.put("stdout", b"y" * 100)
    assert pipe.discarded_bytes == 4 + 50 * 100


async def test_the_stream_is_taken_once() -> None:
    pipe = OutputPipe()
    pipe.chunks()
    with pytest.raises(InvalidStateError):
        pipe.chunks()


async def test_close_with_an_error_ends_the_stream_after_the_queued_chunks() -> None:
    pipe = OutputPipe(producers=2)  # the other producer never closes: the error ends it anyway
    chunks = pipe.chunks()
    await pipe.put("stderr", b"last words")
    pipe.close(NotFoundError("execution gone"))
    await pipe.put("stdout", b"too late")  # after the end: ignored
    assert (await anext(chunks)).data == b"last words"
    with pytest.raises(NotFoundError):
        await anext(chunks)


async def test_empty_chunks_are_not_delivered() -> None:
    pipe = OutputPipe()
    await produce(pipe, "stdout", [b"", b"z", b""])
    assert [c.data async for c in pipe.chunks()] == [b"z"]
