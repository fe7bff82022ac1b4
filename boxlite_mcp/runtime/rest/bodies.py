"""Reading answer bodies within bounds: a size cap for read answers, a pace for streams."""

from __future__ import annotations

# asyncio: a read deadline moved as data arrives (asyncio.timeout_at on the loop clock).
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from ..errors import BoxTimeoutError, InternalError

#: The most a JSON answer may weigh; anything bigger is refused, not buffered.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: How much of an error answer is read for its message.
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A read answer: status, headers and the (size-capped) body."""

    status_code: int
    headers: httpx.Headers
    content: bytes


async def read_capped(
    response: httpx.Response, cap: int, what: str, *, truncate: bool = False
) -> bytes:
    """The body, at most ``cap`` bytes: refused beyond that, or cut with ``truncate``."""
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if total > cap:
                if truncate:
                    chunks.append(chunk[: cap - (total - len(chunk))])
                    break
                raise InternalError(
                    f"{what + ': ' if what else ''}the server's answer is larger than "
                    f"{cap // (1024 * 1024)} MiB; refused (a BoxLite answer is small)"
                )
            chunks.append(chunk)
    finally:
        await response.aclose()
    return b"".join(chunks)


#: A streamed body must bring at least this much per ``timeout`` window (see ``paced``).
MIN_PACE_BYTES = 64 * 1024


async def paced(
    chunks: AsyncIterator[bytes], *, window: float, what: str, min_bytes: int = MIN_PACE_BYTES
) -> AsyncIterator[bytes]:
    """A body's chunks, failing with BoxTimeoutError if a ``window`` passes with fewer
    than ``min_bytes`` arriving: a per-read timeout never fires on a trickle, and a
    whole-body deadline would cut off a big, healthy download."""
    loop = asyncio.get_running_loop()
    iterator = chunks.__aiter__()
    window_end = loop.time() + window
    pending = 0
    while True:
        try:
            async with asyncio.timeout_at(window_end):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BoxTimeoutError(
                f"{what + ': ' if what else ''}the server sent less than "
                f"{min_bytes // 1024} KiB in {window:g}s; gave up (BOXLITE_REST_TIMEOUT)"
            ) from None
        pending += len(chunk)
        if pending >= min_bytes:
            pending = 0
            window_end = loop.time() + window
        yield chunk
