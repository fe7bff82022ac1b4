"""Reading and sizing one file of a box in-band, within a size cap.

Shared by the ``file_read`` tool and the ``boxlite://boxes/{box}/files/{+path}``
resource. Reads go through the runtime's file API (``Box.read_file``: no program
runs in the box, the cap holds while the bytes stream). ``stat`` remains only for
``file_write``, to refuse writing over a directory where the box can say so.
"""

from __future__ import annotations

import anyio

from ..runtime.errors import (
    BoxliteError,
    InvalidArgumentError,
    NotFoundError,
    too_big_for_transfer,
)
from ..runtime.types import ExecRequest
from .registry import BoxEntry

#: Ceiling for the quick `stat` that checks a file before it is transferred.
STAT_TIMEOUT_SECONDS = 10.0


async def stat(entry: BoxEntry, path: str) -> tuple[int, str] | None:
    """(size, kind) of a box path, None when the box cannot say (no stat there).

    NotFoundError when the path does not exist.
    """
    request = ExecRequest(
        command="stat",
        args=["-L", "-c", "%s %F", "--", path],
        working_dir="/",  # the box's default working_dir may not exist
        timeout_seconds=STAT_TIMEOUT_SECONDS,
    )
    try:
        execution = await entry.box.exec(request)
        out = bytearray()
        err = bytearray()
        with anyio.move_on_after(STAT_TIMEOUT_SECONDS):
            async for chunk in execution.output():
                (out if chunk.stream == "stdout" else err).extend(chunk.data[:4096])
        result = await execution.wait()
    except BoxliteError:
        return None
    if result.exit_code != 0:
        if b"No such file" in err:
            raise NotFoundError(f"{path} does not exist in the box.")
        return None
    size, _, kind = out.decode(errors="replace").strip().partition(" ")
    return (int(size), kind) if size.isdigit() else None


def too_big(what: str, size: int, cap: int) -> InvalidArgumentError:
    """Content over the in-band cap (file_write's side of the same rule as reads)."""
    return too_big_for_transfer(what, size, cap)


async def read_box_file(entry: BoxEntry, path: str, cap: int) -> bytes:
    """A box file's bytes, at most ``cap``, through the runtime's file API.

    Nothing runs in the box (``Box.read_file``), so this works on an image with no
    shell or coreutils; the cap holds while the bytes move.
    """
    data = await entry.box.read_file(path, cap)
    await entry.touch()
    return data
