"""Box.read_file's cap holds while the bytes move: the stream readers stop at it.

The contract suite (tests/contract/test_files.py) checks what each runtime
answers; these check, on the shared pieces themselves, that a file over the cap is
never taken whole: the tar-stream reader (rest) stops consuming its source, and the
watched copy (local) stops its writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.local.files import read_through_copy
from boxlite_mcp.runtime.shared import archive

from .tarbuild import END, directory, header, reg

pytestmark = pytest.mark.anyio

CAP = 64 * 1024


class Endless:
    """``head`` then zeros forever, in 64 KiB chunks; counts what was taken."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.taken += len(self.head)
        yield self.head
        while True:
            self.taken += 65536
            yield bytes(65536)


async def read(data: bytes, path: str = "/srv/f.txt", cap: int = CAP) -> bytes:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return await archive.read_single_file(chunks(), path, cap)


async def test_a_file_within_the_cap_is_returned() -> None:
    assert await read(reg("f.txt", b"hello") + END) == b"hello"
    assert await read(reg("f.txt", b"x" * CAP) + END) == b"x" * CAP


async def test_a_declared_size_over_the_cap_stops_the_stream_early() -> None:
    source = Endless(header("f.txt", 1024**4))  # a 1 TiB file
    with pytest.raises(InvalidArgumentError) as caught:
        await archive.read_single_file(source, "/srv/f.txt", CAP)
    assert "'/srv/f.txt' is 1099511627776 bytes" in caught.value.message
    assert source.taken <= CAP + archive.SINGLE_FILE_OVERHEAD + 65536


async def test_an_endless_stream_of_small_entries_stops_at_the_cap() -> None:
    """A directory that never ends: refused once the cap is passed, size unknown."""
    source = Endless(directory("d/") + reg("d/a", b"a"))
    with pytest.raises(InvalidArgumentError):
        await archive.read_single_file(source, "/srv/d", CAP)
    assert source.taken <= CAP + archive.SINGLE_FILE_OVERHEAD + 65536


async def test_directories_and_odd_archives_are_clear_errors() -> None:
    for data in (END, directory("x/") + END, reg("other", b"1") + reg("more", b"2") + END):
        with pytest.raises(InvalidArgumentError) as caught:
            await read(data, "/srv/x")
        assert "'/srv/x' is a directory" in caught.value.message
    with pytest.raises(InvalidArgumentError) as caught:
        await read(b"this is not a tar archive" * 40)
    assert "not a readable tar archive" in caught.value.message


async def test_the_watched_copy_stops_a_writer_that_never_ends(tmp_path: Path) -> None:
    """The local runtime's read: a copy writing forever is cancelled past the cap."""
    written = 0

    async def copy(src: str, staged: Path) -> None:
        nonlocal written
        with staged.open("wb") as out:
            while True:
                out.write(bytes(65536))
                out.flush()
                written += 65536
                await anyio.sleep(0.001)

    with anyio.fail_after(10), pytest.raises(InvalidArgumentError) as caught:
        await read_through_copy("/srv/huge", 1024 * 1024, copy)
    assert "'/srv/huge'" in caught.value.message and "1048576-byte" in caught.value.message
    assert written < 64 * 1024 * 1024


async def test_the_watched_copy_reads_a_file_and_follows_a_symlink(tmp_path: Path) -> None:
    files = {"/srv/real": b"content", "/srv/link": None}

    async def copy(src: str, staged: Path) -> None:
        if src not in files:
            raise NotFoundError(f"{src} does not exist")
        data = files[src]
        if data is None:
            await anyio.Path(staged).symlink_to("real")
        else:
            await anyio.Path(staged).write_bytes(data)

    assert await read_through_copy("/srv/link", 100, copy) == b"content"
    with pytest.raises(NotFoundError):
        await read_through_copy("/srv/none", 100, copy)
