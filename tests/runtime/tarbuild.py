"""Build tar streams entry by entry, including ones ``tarfile`` would never write.

The archive tests need hostile headers (a 1 TiB size, a negative size, a huge
PAX record, an unknown type) as exact bytes, so they can count how much of a
stream is read before it is refused.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

BLOCK = tarfile.BLOCKSIZE
END = b"\0" * (2 * BLOCK)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def reg(name: str, data: bytes = b"", mode: int = 0o644) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info.tobuf(format=tarfile.PAX_FORMAT) + pad(data)


def entry(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info.tobuf(format=tarfile.PAX_FORMAT)


def directory(name: str, mode: int = 0o755) -> bytes:
    return entry(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> bytes:
    return entry(name, tarfile.SYMTYPE, target)


def hardlink(name: str, target: str) -> bytes:
    return entry(name, tarfile.LNKTYPE, target)


def with_size(header: bytes, size: int) -> bytes:
    """A GNU header with ``size`` in base-256 (any size, negative ones too)."""
    block = bytearray(header[:BLOCK])
    value = size % 256**11
    field = bytearray(12)
    field[0] = 0x80 if size >= 0 else 0xFF  # GNU base-256: 0x80 positive, 0xFF negative
    for index in range(11, 0, -1):
        field[index] = value & 0xFF
        value >>= 8
    block[124:136] = field
    checksum = 256 + sum(block[:148]) + sum(block[156:])
    block[148:156] = b"%06o\0 " % checksum
    return bytes(block)


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One header block declaring ``size`` bytes of data, none of which follows."""
    info = tarfile.TarInfo(name)
    info.type = kind
    return with_size(info.tobuf(format=tarfile.GNU_FORMAT), size)


def pax_header(records: dict[str, str]) -> bytes:
    """A PAX extended header holding exactly ``records`` (in this order)."""
    data = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        data += str(length).encode() + body
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(data)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + pad(data)


def tar(*entries: bytes) -> io.BytesIO:
    return io.BytesIO(b"".join(entries) + END)


class Stream:
    """Chunks of a stream whose tail never ends, counting what was read.

    A watch that fails to refuse early would read forever; the stream gives up
    after ``give_up`` bytes instead, so such a test fails fast.
    """

    def __init__(self, head: bytes, chunk: int = 64 * 1024, give_up: int = 64 * 1024**2):
        self.head = head
        self.chunk = chunk
        self.give_up = give_up
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.head), self.chunk):
            piece = self.head[start : start + self.chunk]
            self.read += len(piece)
            yield piece
        zeros = b"\0" * self.chunk
        while self.read < self.give_up:
            self.read += len(zeros)
            yield zeros
        raise AssertionError(f"read {self.read} bytes and nothing refused the stream")
