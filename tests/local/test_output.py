"""The merged output stream: order, backpressure, the unread limit, an abandoned reader."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from boxlite_mcp.runtime.errors import InvalidStateError
from boxlite_mcp.runtime.local.output import OutputBuffer
from boxlite_mcp.runtime.types import OutputChunk

pytestmark = pytest.mark.anyio


def chunk(stream: str, data: bytes) -> OutputChunk:
    return OutputChunk(stream=stream, data=data)  # type: ignore[arg-type]


async def produce(buffer: OutputBuffer, stream: str, pieces: list[bytes]) -> None:
    for piece in pieces:
        await buffer.put(chunk(stream, piece))
    await buffer.close()


async def test_each_stream_keeps_its_order_and_the_stream_ends() -> None:
    buffer = OutputBuffer(producers=2)
    out = [f"o{i};".encode() for i in range(200)]
    err = [f"e{i};".encode() for i in range(200)]
    seen: list[OutputChunk] = []

    async def read() -> None:
        async for item in buffer.chunks():
            seen.append(item)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(produce, buffer, "stdout", out)
            tg.start_soon(produce, buffer, "stderr", err)
    assert [c.data for c in seen if c.stream == "stdout"] == out
    assert [c.data for c in seen if c.stream == "stderr"] == err


async def test_a_slow_reader_holds_producers_at_the_high_water_mark() -> None:
    buffer = OutputBuffer(producers=1, high_water=1000)
    sent = 0

    async def producer() -> None:
        nonlocal sent
        for _ in range(100):
            await buffer.put(chunk("stdout", b"x" * 100))
            sent += 100
        await buffer.close()

    reader = buffer.chunks()  # a reader exists from here on
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


async def test_unread_output_keeps_the_earliest_bytes_up_to_the_limit() -> None:
    buffer = OutputBuffer(producers=1, unread_limit=250)
    with anyio.fail_after(5):  # producers never wait while nobody reads
        await produce(buffer, "stdout", [b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 100])
    data = b"".join([c.data async for c in buffer.chunks()])
    assert data == b"a" * 100 + b"b" * 100 + b"c" * 50
    assert buffer.discarded_bytes == 150


async def test_a_late_reader_after_truncation_gets_only_the_head() -> None:
    buffer = OutputBuffer(producers=1, unread_limit=10)
    await buffer.put(chunk("stdout", b"0123456789abc"))  # over the limit: cut
    reader = buffer.chunks()
    await buffer.put(chunk("stdout", b"later"))  # after the gap: not delivered
    await buffer.close()
    assert [c.data async for c in reader] == [b"0123456789"]


async def test_late_reader_gets_kept_output_then_live_output() -> None:
    buffer = OutputBuffer(producers=1, unread_limit=10)
    await buffer.put(chunk("stdout", b"early"))
    reader = buffer.chunks()
    assert (await reader.__anext__()).data == b"early"
    await buffer.put(chunk("stdout", b"x" * 50))  # a reader exists: nothing is cut now
    await buffer.close()
    assert [c.data async for c in reader] == [b"x" * 50]


async def test_an_abandoned_reader_never_blocks_producers() -> None:
    buffer = OutputBuffer(producers=1, high_water=100)
    reader = buffer.chunks()
    await buffer.put(chunk("stdout", b"first"))
    assert (await reader.__anext__()).data == b"first"
    await reader.aclose()  # type: ignore[attr-defined]
    with anyio.fail_after(5):
        for _ in range(50):
            await buffer.put(chunk("stdout", b"y" * 100))
        await buffer.close()
    assert buffer.finished


async def test_output_can_be_taken_once() -> None:
    buffer = OutputBuffer(producers=1)
    buffer.chunks()
    with pytest.raises(InvalidStateError):
        buffer.chunks()


async def test_empty_chunks_are_not_delivered() -> None:
    buffer = OutputBuffer(producers=1)
    await produce(buffer, "stdout", [b"", b"z", b""])
    assert [c.data async for c in buffer.chunks()] == [b"z"]
