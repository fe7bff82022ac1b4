"""Large bodies: request bodies streamed to disk (capped), files streamed out."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from .errors import PAYLOAD_TOO_LARGE, HttpError
from .state import Call

CHUNK = 256 * 1024


async def receive_to_file(call: Call, dest: Path) -> int:
    """Stream the request body to ``dest``, capped; returns its size."""
    limit = call.config.file_transfer_max_bytes
    size = 0
    async with await anyio.open_file(dest, "wb") as f:
        async for chunk in call.request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(
                    PAYLOAD_TOO_LARGE,
                    f"request body over the {limit}-byte transfer limit "
                    "(capabilities.file_transfer_max_bytes)",
                )
            await f.write(chunk)
    return size


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes, in chunks, for a streamed response."""
    async with await anyio.open_file(path, "rb") as f:
        while chunk := await f.read(CHUNK):
            yield chunk


def remove_tree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
