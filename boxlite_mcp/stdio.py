"""MCP over stdio without worker threads, when stdin and stdout are pipes or sockets.

The SDK's stdio server reads each line and writes each message through
``anyio.wrap_file``: a worker-thread hop per read, write and flush, which on a
busy machine costs more than the rest of a small tool call. A pipe or socket can
be read and written from the event loop directly (non-blocking, woken by the
loop's selector), so this transport does that and speaks exactly what the SDK's
does: newline-delimited JSON-RPC, each line decoded as UTF-8 (invalid bytes
replaced), universal newlines, parsed with the SDK's own message adapter, and
each outgoing message dumped as the SDK dumps it.

Files and terminals cannot be waited on this way (and a terminal's non-blocking
flag would leak to the shell), so for those the SDK's transport serves.

As in the SDK, while serving fd 0 reads the null device and fd 1 writes to
stderr (so boxes and stray prints never touch the wire); the wire is served
from private duplicates and both descriptors are restored on exit.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)

_READ_SIZE: Final = 64 * 1024


def _waitable(fd: int) -> bool:
    """Whether ``fd`` is a pipe or socket (the event loop can wait on it)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def serves_without_threads() -> bool:
    """Whether :func:`run_stdio` serves this process's stdio itself (else the SDK does)."""
    return _waitable(0) and _waitable(1)


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` on this process's stdin and stdout until EOF.

    Pipes and sockets are served from the event loop; anything else by the
    SDK's own stdio transport.
    """
    if not serves_without_threads():
        await server.run_stdio_async()
        return
    # MCPServer.run_stdio_async runs its low-level server on the SDK's transport;
    # there is no public way to hand it other streams, so this does the same.
    lowlevel = server._lowlevel_server
    async with stdio_streams() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


@dataclass
class _Wire:
    """The transport's private duplicates of fds 0 and 1, and how to put them back."""

    read_fd: int
    write_fd: int
    read_blocking: bool
    write_blocking: bool

    @classmethod
    def claim(cls) -> _Wire:
        sys.stdout.flush()
        read_fd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
        try:
            write_fd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
        except OSError:
            os.close(read_fd)
            raise
        wire = cls(read_fd, write_fd, os.get_blocking(read_fd), os.get_blocking(write_fd))
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
        os.dup2(2, 1)
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        return wire

    def release(self) -> None:
        for fd, std, blocking in (
            (self.read_fd, 0, self.read_blocking),
            (self.write_fd, 1, self.write_blocking),
        ):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, blocking)
            with contextlib.suppress(OSError):
                os.dup2(fd, std)
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.asynccontextmanager
async def stdio_streams() -> AsyncIterator[
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
    ]
]:
    """The read and write streams a low-level MCP server runs on, over fds 0 and 1."""
    wire = _Wire.claim()
    try:
        incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_read_messages, wire.read_fd, incoming_send)
            tg.start_soon(_write_messages, wire.write_fd, outgoing_receive)
            yield incoming, outgoing
    finally:
        wire.release()


async def _read_messages(
    fd: int, messages: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    """Parse each line read from ``fd`` into a message (or the error saying why not)."""
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True
    )
    partial: list[str] = []  # the current line's text so far (no quadratic re-joining)
    async with messages:
        while True:
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            final = not chunk
            text = decoder.decode(chunk, final=final)
            if "\n" in text:
                first, *lines, last = text.split("\n")
                partial.append(first)
                lines.insert(0, "".join(partial))
                partial = [last] if last else []
                for line in lines:
                    if not await _deliver(line + "\n", messages):
                        return
            elif text:
                partial.append(text)
            if final:
                if partial:  # a last line without its newline counts, as for a text file
                    await _deliver("".join(partial), messages)
                return


async def _deliver(line: str, messages: MemoryObjectSendStream[SessionMessage | Exception]) -> bool:
    """Send one line's message on; False once nobody receives any more."""
    item: SessionMessage | Exception
    try:
        item = SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except Exception as exc:  # the SDK hands parse errors to the server the same way
        item = exc
    try:
        await messages.send(item)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return False
    return True


async def _write_messages(fd: int, messages: MemoryObjectReceiveStream[SessionMessage]) -> None:
    """Write each message as one line; once the client stops reading, drop the rest."""
    gone = False
    async with messages:
        async for session_message in messages:
            if gone:
                continue
            line = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
            try:
                await _write_all(fd, (line + "\n").encode("utf-8"))
            except (BrokenPipeError, ConnectionResetError):
                logger.info("the stdio client stopped reading; dropping further output")
                gone = True


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await anyio.wait_writable(fd)
            continue
        view = view[written:]
