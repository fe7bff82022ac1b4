"""Malicious tar archives, answered to ``GET /boxes/{id}/files?path=...``.

The requested ``path`` is what they attack: the fuzz asks for the absolute path of
a sentinel directory on the host, and the archives try to write into it (absolute
entry names, symlinks and hard links to it), next to the destination (``..``,
symlink chains), or to exhaust the client (huge declared sizes, many entries,
bodies that trickle or never end). Every name an archive writes carries
``MARKER``, so a search of the host finds anything that got out.

Archives are generated as streams: the server never holds a big one in memory.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
from collections.abc import AsyncIterator, Callable

from .base import Ctx, pace

MARKER = "hostile-escape"
BLOCK = 512
CHUNK = 256 * 1024

Stream = Callable[[Ctx], AsyncIterator[bytes]]


def _header(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    size: int = 0,
    linkname: str = "",
    major: int = 0,
    minor: int = 0,
) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    info.devmajor, info.devminor = major, minor
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _file(name: str, data: bytes) -> bytes:
    padding = (-len(data)) % BLOCK
    return _header(name, size=len(data)) + data + b"\0" * padding


END = b"\0" * (2 * BLOCK)


def _target(ctx: Ctx) -> str:
    return ctx.query.get("path", "/nonexistent").rstrip("/") or "/"


def _up(target: str) -> str:
    """A relative path from any depth below the root up to the absolute ``target``."""
    return "../" * 16 + target.lstrip("/")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def dotdot(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(_file("ok.txt", b"fine\n") + _file(f"../{MARKER}-dotdot.txt", b"x") + END)


def dotdot_deep(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(
        _file("a/b/ok.txt", b"fine\n") + _file(f"a/b/../../../{MARKER}-deep.txt", b"x") + END
    )


def absolute(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(_file(f"{_target(ctx)}/{MARKER}-abs.txt", b"x") + END)


def symlink_abs(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(
        _header("evil", tarfile.SYMTYPE, linkname=_target(ctx))
        + _file(f"evil/{MARKER}-symlink.txt", b"x")
        + END
    )


def symlink_rel(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(
        _header("evil", tarfile.SYMTYPE, linkname=_up(_target(ctx)))
        + _file(f"evil/{MARKER}-symrel.txt", b"x")
        + END
    )


def symlink_chain(ctx: Ctx) -> AsyncIterator[bytes]:
    """Each link stays inside when read as text; on disk, ``l2`` is the parent of the root."""
    return _once(
        _header("l1", tarfile.SYMTYPE, linkname=".")
        + _header("l2", tarfile.SYMTYPE, linkname="l1/..")
        + _file(f"l2/{MARKER}-chain.txt", b"x")
        + END
    )


def hardlink_abs(ctx: Ctx) -> AsyncIterator[bytes]:
    """Link to a host file, then write through the link."""
    return _once(
        _header("h", tarfile.LNKTYPE, linkname=f"{_target(ctx)}/victim.txt")
        + _file("h", MARKER.encode())
        + END
    )


def hardlink_rel(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(
        _header("h", tarfile.LNKTYPE, linkname=_up(_target(ctx)) + "/victim.txt")
        + _file("h", MARKER.encode())
        + END
    )


def chardev(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(_header(f"{MARKER}-null", tarfile.CHRTYPE, major=1, minor=3) + END)


def blockdev(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(_header(f"{MARKER}-loop", tarfile.BLKTYPE, major=7, minor=0) + END)


def fifo(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(_header(f"{MARKER}-fifo", tarfile.FIFOTYPE) + END)


def long_name(ctx: Ctx) -> AsyncIterator[bytes]:
    name = "/".join(["d" * 250] * 40) + "/file.txt"  # 10 KB: over PATH_MAX
    return _once(_file(name, b"x") + END)


def bomb_size(ctx: Ctx) -> AsyncIterator[bytes]:
    """Declares a 1 TiB member, sends none of it."""
    return _once(_header("huge.bin", size=1 << 40))


async def bomb_entries(ctx: Ctx) -> AsyncIterator[bytes]:
    """``tar_entries`` empty files, streamed."""
    batch = bytearray()
    for index in range(ctx.config.tar_entries):
        batch += _header(f"many/{index:08d}")
        if len(batch) >= CHUNK:
            yield bytes(batch)
            batch.clear()
            await pace()
    yield bytes(batch) + END


async def trickle(ctx: Ctx) -> AsyncIterator[bytes]:
    """A valid start, then one byte per ``trickle_seconds``, forever."""
    yield _header("slow.bin", size=1 << 30)
    while True:
        await asyncio.sleep(ctx.config.trickle_seconds)
        yield b"\0"


async def endless(ctx: Ctx) -> AsyncIterator[bytes]:
    """A member that claims 1 TiB, then zeros as fast as the client reads."""
    yield _header("endless.bin", size=1 << 40)
    zeros = b"\0" * CHUNK
    sent = 0
    while sent < ctx.config.endless_bytes:
        yield zeros
        sent += len(zeros)
        await pace()


def garbage(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(os.urandom(64 * 1024))


def empty(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(b"")


def html(ctx: Ctx) -> AsyncIterator[bytes]:
    return _once(b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>\n")
