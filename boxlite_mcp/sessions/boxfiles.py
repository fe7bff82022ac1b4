"""Reading one file of a box in-band, within a size cap.

Shared by the ``file_read`` tool and the ``boxlite://boxes/{box}/files/{+path}``
resource. The size is asked first (``stat`` in the box) so that a huge file or a
directory is refused before anything is copied to the host.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from ..runtime.errors import BoxliteError, InvalidArgumentError, NotFoundError, UnsupportedError
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


def too_big(path: str, size: int, cap: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path} is {size} bytes, over the {cap}-byte limit for in-band transfer. Read part "
        "of it with exec_run (head, tail, grep, sed -n), or use copy_out if host paths "
        "are allowed."
    )


async def read_box_file(entry: BoxEntry, path: str, cap: int) -> bytes:
    """A box file's bytes, at most ``cap``, via a private temporary directory."""
    found = await stat(entry, path)
    if found is None:  # never copy a path of unknown size out just to refuse it afterwards
        raise UnsupportedError(
            f"Cannot tell the size of {path} in this box (no working `stat` there). "
            "Read it with exec_run (cat, head, base64) instead."
        )
    size, kind = found
    if kind == "directory":
        raise InvalidArgumentError(
            f"{path} is a directory. List it with exec_run(command='ls -la {path}'), "
            "or read a file inside it."
        )
    if size > cap:
        raise too_big(path, size, cap)
    with tempfile.TemporaryDirectory(prefix="boxlite-mcp-read-") as tmp:
        local = Path(tmp) / "content"
        await entry.box.copy_out(path, local)
        if local.is_dir():
            raise InvalidArgumentError(f"{path} is a directory, not a file.")
        size = local.stat().st_size
        if size > cap:
            raise too_big(path, size, cap)
        data = await anyio.Path(local).read_bytes()
    await entry.touch()
    return data
