"""The output backlog: exact resume by offsets, bounded memory, producer flow control."""

from __future__ import annotations

import asyncio

import pytest

from tools.boxlite_server.backlog import STDERR, STDOUT, OffsetError, OutputBacklog

pytestmark = pytest.mark.anyio


def drain(
    backlog: OutputBacklog, offsets: tuple[int, int], max_bytes: int = 1 << 20
) -> list[tuple[int, bytes]]:
    cursor = backlog.open(offsets)
    pieces = []
    while (piece := backlog.read(cursor, max_bytes)) is not None:
        pieces.append(piece)
    return pieces


async def test_resume_from_any_offsets_in_order() -> None:
    backlog = OutputBacklog(cap=1 << 20, grace_seconds=60)
    await backlog.append(STDOUT, b"aaa")
    await backlog.append(STDOUT, b"bbb")
    await backlog.append(STDERR, b"EE")
    await backlog.append(STDOUT, b"ccc")
    backlog.close()
    assert drain(backlog, (0, 0)) == [(STDOUT, b"aaabbb"), (STDERR, b"EE"), (STDOUT, b"ccc")]
    assert drain(backlog, (4, 0)) == [(STDOUT, b"bb"), (STDERR, b"EE"), (STDOUT, b"ccc")]
    assert drain(backlog, (6, 1)) == [(STDERR, b"E"), (STDOUT, b"ccc")]
    assert drain(backlog, (7, 2)) == [(STDOUT, b"cc")]
    assert drain(backlog, (9, 2)) == []
    assert drain(backlog, (0, 0), max_bytes=2)[:3] == [
        (STDOUT, b"aa"),
        (STDOUT, b"ab"),
        (STDOUT, b"bb"),
    ]
    with pytest.raises(OffsetError):
        backlog.open((10, 0))
    cursor = backlog.open((9, 2))
    assert backlog.at_end(cursor) and cursor.event_id == "9-2"


async def test_cap_discards_oldest_and_reports_loss() -> None:
    backlog = OutputBacklog(cap=64 * 1024, grace_seconds=0.01)
    await asyncio.sleep(0.02)  # nobody attached within the grace: the producer runs freely
    for _ in range(10):
        await backlog.append(STDOUT, b"x" * 16 * 1024)
    assert backlog.retained <= 64 * 1024
    cursor = backlog.open((0, 0))
    piece = backlog.read(cursor, 1 << 20)
    assert cursor.lost == [6 * 16 * 1024, 0]
    assert piece == (STDOUT, b"x" * 4 * 16 * 1024)


async def test_producer_waits_for_a_lagging_consumer() -> None:
    backlog = OutputBacklog(cap=64 * 1024, grace_seconds=60)
    cursor = backlog.open((0, 0))
    token = backlog.attach(cursor)
    await backlog.append(STDOUT, b"x" * 40 * 1024)  # now 40 KiB ahead: over half the cap
    blocked = asyncio.get_running_loop().create_task(backlog.append(STDOUT, b"y"))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert backlog.read(cursor, 1 << 20) == (STDOUT, b"x" * 40 * 1024)
    backlog.note_sent(token, cursor)
    await asyncio.wait_for(blocked, 1)
    backlog.detach(token)
    backlog.detach(token)  # idempotent
