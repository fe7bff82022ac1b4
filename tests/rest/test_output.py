"""OutputPipe: the Execution output contract, on its own (no network in the way)."""

from __future__ import annotations

import asyncio

import pytest

from boxlite_mcp.runtime.errors import InvalidStateError, NotFoundError
from boxlite_mcp.runtime.rest.output import OutputPipe

pytestmark = pytest.mark.anyio


async def test_a_reader_behind_by_high_water_holds_the_producer_back() -> None:
    pipe = OutputPipe(high_water=10)
    chunks = pipe.chunks()
    await pipe.put("stdout", b"0123456789")
    blocked = asyncio.create_task(pipe.put("stdout", b"next"))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "the producer ran ahead of a reader that is behind"
    first = await anext(chunks)
    await asyncio.wait_for(blocked, 1)
    second = await anext(chunks)
    assert (first.data, second.data) == (b"0123456789", b"next")


async def test_unread_output_never_blocks_and_keeps_the_head() -> None:
    pipe = OutputPipe(high_water=4, unread_limit=10)
    for piece in (b"abcd", b"efgh", b"ijkl", b"mnop"):
        await asyncio.wait_for(pipe.put("stdout", piece), 1)
    pipe.close()
    got = b"".join([chunk.data async for chunk in pipe.chunks()])
    assert got == b"abcdefghij"
    assert pipe.discarded_bytes == 6


async def test_a_reader_that_leaves_releases_the_producer() -> None:
    pipe = OutputPipe(high_water=4)
    chunks = pipe.chunks()
    await pipe.put("stdout", b"abcd")
    blocked = asyncio.create_task(pipe.put("stderr", b"efgh"))
    await asyncio.sleep(0.01)
    await anext(chunks)
    await chunks.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(blocked, 1)
    await asyncio.wait_for(pipe.put("stdout", b"more"), 1)
    assert pipe.discarded_bytes >= 4


async def test_the_stream_is_taken_once_and_ends_with_the_error() -> None:
    pipe = OutputPipe()
    chunks = pipe.chunks()
    with pytest.raises(InvalidStateError):
        pipe.chunks()
    await pipe.put("stderr", b"last words")
    pipe.close(NotFoundError("execution gone"))
    assert (await anext(chunks)).data == b"last words"
    with pytest.raises(NotFoundError):
        await anext(chunks)
