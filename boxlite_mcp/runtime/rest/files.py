"""File transfer: tar streams through ``PUT``/``GET /boxes/{id}/files?path=...``.

Archives are made and unpacked by ``runtime.archive`` (BoxLite's tar semantics,
safe all-or-nothing unpacking, spooled so nothing big is held in memory); this
module only moves them. Uploads stream from the spool and are retried from its
start (PUT is idempotent); downloads are spooled, capped, then unpacked. A download's
entry headers are checked as they arrive, so a member declaring more than the size cap
(the server's ``file_transfer_max_bytes`` when it advertises one) stops it at once.
``read_file`` takes the same download into memory, closing it once past its cap.

Copies land in the box's root filesystem. ``/tmp``, ``/dev/shm`` and ``/run`` are
tmpfs mounts inside a box, so a file copied there would be invisible to its
commands (0.9 servers accept it silently, 0.10 servers answer 400): copies into
them are refused up front (``runtime.boxpaths``), and a copy out of them that
finds nothing says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

from ..errors import NotFoundError
from ..shared import archive
from ..shared.boxpaths import check_box_path, check_copy_destination
from .bodies import paced
from .client import RestClient
from .errors import unavailable

T = TypeVar("T")


async def copy_in(client: RestClient, box_id: str, host_src: Path, box_dest: str) -> None:
    """Archive ``host_src`` and extract it at ``box_dest`` in the box."""
    check_copy_destination(box_dest)
    spool = await archive.apack(host_src)
    try:
        size = spool.seek(0, 2)

        async def body() -> AsyncIterator[bytes]:
            spool.seek(0)
            while chunk := spool.read(archive.CHUNK_BYTES):
                yield chunk

        await client.request(
            "PUT",
            await client.url("boxes", box_id, "files"),
            params={"path": box_dest},
            content=body,
            idempotent=True,
            headers={"Content-Type": "application/x-tar", "Content-Length": str(size)},
            what=f"copy {host_src.name or host_src} into box {box_id} at {box_dest}",
        )
    finally:
        spool.close()


async def copy_out(client: RestClient, box_id: str, box_src: str, host_dest: Path) -> None:
    """Download ``box_src`` as a tar and unpack it at ``host_dest``, all or nothing."""
    mount = check_box_path(box_src, "source")
    url = await client.url("boxes", box_id, "files")
    limits = await _limits(client)
    with _tmpfs_hint(mount):
        spool = await _download(
            client,
            url,
            box_src,
            f"copy {box_src} out of box {box_id}",
            lambda body: archive.spool(body, limits),
        )
    try:
        await archive.aunpack(spool, host_dest, limits)
    finally:
        spool.close()


async def read_file(client: RestClient, box_id: str, box_src: str, max_bytes: int) -> bytes:
    """One file's bytes from the tar ``GET``, the transfer stopped once past ``max_bytes``.

    Nothing is spooled to disk: the body is read only up to the cap (plus the tar
    headers) and the response is closed there (see ``archive.read_single_file``).
    """
    mount = check_box_path(box_src, "source")
    url = await client.url("boxes", box_id, "files")
    what = f"read {box_src} from box {box_id}"
    with _tmpfs_hint(mount):
        return await _download(
            client,
            url,
            box_src,
            what,
            lambda body: archive.read_single_file(body, box_src, max_bytes),
        )


@contextmanager
def _tmpfs_hint(mount: str) -> Iterator[None]:
    """A path not found under a tmpfs mount: say why file transfer cannot see it."""
    try:
        yield
    except NotFoundError as exc:
        if mount:
            raise NotFoundError(
                f"{exc.message}. Note: {mount} is a tmpfs mount inside the box and file "
                "transfer reads the box's disk, so files under it cannot be read or copied "
                "out; write them elsewhere (e.g. /root) first"
            ) from None
        raise


async def _limits(client: RestClient) -> archive.Limits:
    """The archive caps, lowered to the server's ``file_transfer_max_bytes`` if it says one."""
    config = await client.config()
    advertised = config.capabilities.file_transfer_max_bytes if config.capabilities else None
    if isinstance(advertised, int) and 0 < advertised < archive.DEFAULT_MAX_BYTES:
        return archive.Limits(max_bytes=advertised)
    return archive.Limits()


async def _download(
    client: RestClient,
    url: str,
    box_src: str,
    what: str,
    take: Callable[[AsyncIterator[bytes]], Awaitable[T]],
) -> T:
    """``take`` applied to the tar body; a body cut mid-way is fetched again (GET is
    idempotent). ``take`` may stop reading early: leaving the stream closes it."""
    attempt = 0
    while True:
        try:
            async with client.stream(
                "GET",
                url,
                params={"path": box_src},
                headers={"Accept": "application/x-tar"},
                what=what,
            ) as response:
                body = paced(response.aiter_raw(), window=client.settings.timeout, what=what)
                return await take(body)
        except httpx.TransportError as exc:
            if attempt >= client.settings.retries:
                raise unavailable(url, exc) from exc
            attempt += 1
