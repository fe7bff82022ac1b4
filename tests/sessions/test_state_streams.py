"""``append_stream``: per-stream offsets kept with the bytes, on both stores.

A follower that takes an execution over re-attaches each stream at its own
offset; these tests pin that the store skips what it has, refuses gaps, and
keeps the interleaved offsets and per-stream totals in one step.
"""

from __future__ import annotations

import pytest

from boxlite_mcp.sessions.state import OutputGapError

from .conftest import CAP, Connect

pytestmark = pytest.mark.anyio


async def test_per_stream_totals_follow_the_appends(connect: Connect) -> None:
    store = connect()
    await store.append_stream("e1", "stdout", 0, b"abc")
    await store.append_stream("e1", "stderr", 0, b"XY")
    size = await store.append_stream("e1", "stdout", 3, b"de")
    assert (size.total, size.stdout, size.stderr) == (7, 5, 2)
    assert await store.read_output("e1", 0, 100) == [
        ("stdout", b"abc"),
        ("stderr", b"XY"),
        ("stdout", b"de"),
    ]
    assert await store.output_size("e1") == size


async def test_a_resumed_stream_is_neither_doubled_nor_gapped(connect: Connect) -> None:
    """A second follower re-attached from an earlier offset (or replayed from 0)."""
    first, second = connect(), connect()
    await first.append_stream("e2", "stdout", 0, b"hello ")
    await first.append_stream("e2", "stderr", 0, b"warn\n")
    await second.append_stream("e2", "stdout", 0, b"hello world\n")  # a replay from 0
    size = await second.append_stream("e2", "stderr", 2, b"rn\nmore\n")  # from mid-stream
    assert (size.stdout, size.stderr) == (12, 10)
    pieces = await first.read_output("e2", 0, 100)
    out = b"".join(d for s, d in pieces if s == "stdout")
    err = b"".join(d for s, d in pieces if s == "stderr")
    assert (out, err) == (b"hello world\n", b"warn\nmore\n")


async def test_a_gap_in_one_stream_is_refused(connect: Connect) -> None:
    store = connect()
    await store.append_stream("e3", "stdout", 0, b"ab")
    await store.append_stream("e3", "stderr", 0, b"x")
    with pytest.raises(OutputGapError) as caught:
        await store.append_stream("e3", "stdout", 3, b"d")
    assert (caught.value.offset, caught.value.total) == (3, 2)
    assert (await store.output_size("e3")).total == 3  # nothing written


async def test_bytes_beyond_the_cap_count_per_stream(connect: Connect) -> None:
    store = connect()
    await store.append_stream("e4", "stdout", 0, b"o" * CAP)
    size = await store.append_stream("e4", "stderr", 0, b"e" * 10)
    assert (size.stored, size.total, size.stdout, size.stderr) == (CAP, CAP + 10, CAP, 10)


async def test_control_requests_reach_the_follower_once_in_order(connect: Connect) -> None:
    asker, follower = connect(), connect()
    assert await follower.take_control("e5") == []
    await asker.push_control("e5", b'{"op":"stdin"}')
    await asker.push_control("e5", b'{"op":"kill"}')
    assert await follower.take_control("e5") == [b'{"op":"stdin"}', b'{"op":"kill"}']
    assert await follower.take_control("e5") == []
