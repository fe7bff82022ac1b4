"""Copying bytes both ways between two stream pairs (proxy tunnels, exposed ports).

One place for the rules: half-close is passed on (``write_eof``), so protocols
that end a request with a shutdown still work; an error on one side closes the
other; byte counts go to the caller's counter functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHUNK = 256 * 1024


async def pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    a_to_b: Callable[[int], None] = lambda n: None,
    b_to_a: Callable[[int], None] = lambda n: None,
) -> None:
    """Until both directions end; closes ``b_writer`` (the caller closes ``a_writer``)."""

    async def copy(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: Callable[[int], None]
    ) -> None:
        try:
            while data := await src.read(CHUNK):
                dst.write(data)
                count(len(data))
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except OSError:
            dst.close()

    try:
        await asyncio.gather(copy(a_reader, b_writer, a_to_b), copy(b_reader, a_writer, b_to_a))
    finally:
        b_writer.close()
