"""Network rows: a box's downloads through its proxy, and box_expose, vs the host.

Both sides use the same client (``curl``, timing itself with ``-w``) against the
same server (``python -m http.server`` in its own process on 127.0.0.1), so the
difference is the box's path: its proxy (this process) for downloads, the
exposed listener (this process) for box_expose.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.types import ExecRequest

CURL_FORMAT = "%{time_connect} %{time_starttransfer} %{time_total} %{size_download}"


@dataclass(frozen=True)
class Fetch:
    """One curl transfer, in seconds and bytes."""

    connect: float
    first_byte: float
    total: float
    size: int

    @property
    def mb_per_s(self) -> float:
        return self.size / self.total / 1e6 if self.total > 0 else 0.0


def parse_fetch(text: str) -> Fetch:
    connect, first, total, size = text.split()
    return Fetch(float(connect), float(first), float(total), int(float(size)))


@contextlib.asynccontextmanager
async def file_server(directory: Path, port: int) -> AsyncIterator[None]:
    """``python -m http.server`` serving ``directory`` on 127.0.0.1:``port``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        str(port),
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(500):  # polled: the server starts on its own
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.01)
        yield
    finally:
        process.terminate()
        await process.wait()


async def host_fetch(url: str) -> Fetch:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        CURL_FORMAT,
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"host curl {url} failed: {err.decode().strip()}")
    return parse_fetch(out.decode())


async def box_fetch(box: Box, url: str) -> Fetch:
    execution = await box.exec(
        ExecRequest(command="curl", args=["-sS", "-o", "/dev/null", "-w", CURL_FORMAT, url])
    )
    await execution.close_stdin()
    out = bytearray()
    async for chunk in execution.output():
        out.extend(chunk.data)
    result = await execution.wait()
    if result.exit_code != 0:
        raise RuntimeError(f"box curl {url} failed: {out.decode(errors='replace')}")
    return parse_fetch(out.decode())


async def start_box_server(box: Box, size: int, port: int) -> None:
    """A ``size``-byte file served by ``python3 -m http.server`` inside the box."""
    script = (
        f"mkdir -p /srv && head -c {size} /dev/zero > /srv/blob && cd /srv && "
        f"exec python3 -m http.server {port} --bind 127.0.0.1"
    )
    execution = await box.exec(ExecRequest(command="sh", args=["-c", script]))
    await execution.close_stdin()
    probe = ExecRequest(
        command="python3",
        args=["-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"],
    )
    for _ in range(500):  # polled: the server in the box starts on its own
        check = await box.exec(probe)
        await check.close_stdin()
        async for _chunk in check.output():
            pass
        if (await check.wait()).exit_code == 0:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("the box's http.server did not start")
