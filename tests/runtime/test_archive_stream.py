"""The header watch: a tar stream is judged while it arrives, not after it is spooled.

``spool_chunks`` and ``spool`` feed every chunk to ``HeaderWatch``, which reads
each 512-byte header (a PAX ``size`` record included) and refuses the stream as
soon as a declared size, an extended header or the entry count is over its cap.
Each test feeds a :class:`~tests.runtime.tarbuild.Stream` whose tail of zeros
never ends and counts what was read: a refusal must come within the first
chunk, long before the stream cap (8 GiB by default).
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator, Iterable

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.shared import archive
from boxlite_mcp.runtime.shared.archive import Limits, UnsafeArchiveError

from .tarbuild import (
    BLOCK,
    END,
    Stream,
    directory,
    entry,
    header,
    pax_header,
    reg,
    symlink,
    with_size,
)

TIB = 2**40
CHUNK = 64 * 1024
MIB = 2**20


def refused_early(head: bytes, match: str, limits: Limits | None = None) -> Stream:
    stream = Stream(head, chunk=CHUNK)
    with pytest.raises(UnsafeArchiveError, match=match):
        archive.spool_chunks(stream, limits or Limits())
    assert stream.read <= CHUNK, f"read {stream.read} bytes before refusing"
    return stream


def spooled(chunks: Iterable[bytes], limits: Limits | None = None) -> bytes:
    spool = archive.spool_chunks(chunks, limits or Limits())
    try:
        assert spool.tell() == 0
        return spool.read()
    finally:
        spool.close()


def test_a_header_claiming_one_tib_is_refused_at_once() -> None:
    refused_early(header("big", TIB), "size cap")


def test_a_pax_size_record_claiming_one_tib_is_refused_at_once() -> None:
    # tarfile writes sizes over 8 GiB as a PAX record and 0 in the ustar field.
    refused_early(pax_header({"size": str(TIB)}) + entry("big", tarfile.REGTYPE), "size cap")


def test_the_size_record_is_found_among_other_pax_records() -> None:
    head = pax_header({"comment": "7", "mtime": "12", "size": str(TIB)})
    refused_early(head + entry("big", tarfile.REGTYPE), "size cap")


def test_a_file_of_unknown_type_counts_its_data() -> None:
    # tarfile reads data after any type it does not know, as for a regular file.
    refused_early(header("odd", TIB, kind=b"Z"), "size cap")


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_extended_header_is_refused_before_its_data(kind: bytes) -> None:
    refused_early(header("././@Ext", 2 * MIB, kind=kind), "extended header")


def test_an_extended_header_of_exactly_one_mib_is_allowed() -> None:
    def pax_of(size: int) -> bytes:
        value = "v" * (size - len(f"{size} comment=\n"))
        head = pax_header({"comment": value})
        assert tarfile.TarInfo.frombuf(head[:BLOCK], "utf-8", "strict").size == size
        return head

    exact = pax_of(MIB) + reg("f", b"data") + END
    assert spooled([exact]) == exact
    with pytest.raises(UnsafeArchiveError, match=f"{MIB + 1}-byte extended header"):
        spooled([pax_of(MIB + 1) + reg("f", b"data") + END])


def test_more_entries_than_the_cap_are_refused_at_once() -> None:
    three = directory("d") + symlink("d/l", "f") + reg("d/f", b"x")
    assert spooled([three + END], Limits(max_entries=3)) == three + END
    refused_early(three + reg("d/g"), "more than 3 entries", Limits(max_entries=3))


def test_file_data_up_to_exactly_the_cap_is_allowed() -> None:
    # Sizes that are not multiples of 512, an empty file, links and a directory:
    # the watch must skip each entry's padded data exactly to find the next header.
    body = (
        reg("a", b"x" * 600)
        + reg("empty")
        + directory("d")
        + symlink("d/l", "../a")
        + reg("d/b", b"y" * 399)
        + reg("c", b"z")
    )
    assert spooled([body + END], Limits(max_bytes=1000)) == body + END
    refused_early(body, "size cap of 999 bytes", Limits(max_bytes=999))


@pytest.mark.parametrize("size", [1, 511, 512, 4096])
def test_the_verdict_does_not_depend_on_how_the_stream_is_cut(size: int) -> None:
    body = reg("a", b"x" * 700) + pax_header({"comment": "c" * 600}) + reg("b", b"y")
    bomb = body + header("big", TIB)
    chunks = [bomb[i : i + size] for i in range(0, len(bomb), size)]
    with pytest.raises(UnsafeArchiveError, match="size cap"):
        archive.spool_chunks(chunks)
    assert spooled([body + END]) == body + END


def test_a_negative_size_buys_no_room_under_the_cap() -> None:
    # scan() refuses the negative size later; the watch must not count it as credit.
    negative = with_size(entry("neg", tarfile.REGTYPE), -5)
    refused_early(negative + reg("a", b"x" * 1001), "size cap of 1000", Limits(max_bytes=1000))


def test_a_zero_block_in_the_middle_does_not_end_the_watch() -> None:
    # Concatenated archives (tar --concatenate, --ignore-zeros) hold zero blocks.
    refused_early(reg("a", b"x") + b"\0" * BLOCK + header("big", TIB), "size cap")


def test_what_the_watch_cannot_parse_is_left_to_scan() -> None:
    garbage = (b"this is not a tar header" * 30)[:BLOCK]
    stream = garbage + header("big", TIB)  # a header, but after what tar cannot read
    assert spooled([stream]) == stream  # no half-guess: scan says what is wrong
    spool = archive.spool_chunks([stream])
    with pytest.raises(InvalidArgumentError, match="not a valid tar archive"):
        archive.scan(spool)


def test_the_stream_cap_allows_headers_and_padding_beyond_the_byte_cap() -> None:
    # Slack for headers: 1 KiB per entry (counted up to 100,000 entries) plus 10 MiB.
    small = Limits(max_bytes=1000, max_entries=3)
    cap = 1000 + 3 * 1024 + 10 * MIB
    assert len(spooled([b"\0" * cap], small)) == cap
    with pytest.raises(UnsafeArchiveError, match="size cap of 1000 bytes"):
        spooled([b"\0" * cap, b"\0"], small)


def test_the_stream_cap_counts_at_most_100000_entries_of_slack() -> None:
    many = Limits(max_bytes=0, max_entries=10**9)
    cap = 100_000 * 1024 + 10 * MIB
    chunk = b"\0" * (4 * MIB)
    whole, rest = divmod(cap, len(chunk))
    exact = [chunk] * whole + [b"\0" * rest]
    spool = archive.spool_chunks(exact, many)
    assert spool.seek(0, 2) == cap
    spool.close()
    with pytest.raises(UnsafeArchiveError, match="size cap of 0 bytes"):
        archive.spool_chunks([*exact, b"\0"], many)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.anyio
async def test_async_spool_keeps_the_bytes_and_the_caps() -> None:
    small = Limits(max_bytes=1000, max_entries=3)
    cap = 1000 + 3 * 1024 + 10 * MIB
    body = reg("a", b"x" * 1000)
    data = body + b"\0" * (cap - len(body))
    spool = await archive.spool(chunks_of(data, MIB), small)
    try:
        assert spool.tell() == 0 and spool.read() == data
    finally:
        spool.close()
    with pytest.raises(UnsafeArchiveError, match="size cap of 1000 bytes"):
        await archive.spool(chunks_of(data + b"\0", MIB), small)


@pytest.mark.anyio
async def test_async_spool_refuses_a_bomb_at_once() -> None:
    read = 0

    async def bomb() -> AsyncIterator[bytes]:
        nonlocal read
        yield header("big", TIB)
        while read < 64 * MIB:
            read += CHUNK
            yield b"\0" * CHUNK

    with pytest.raises(UnsafeArchiveError, match="size cap"):
        await archive.spool(bomb())
    assert read == 0
