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
stderr (so boxes and stray prints never touch the wire), and both are restored
on exit. The wire is served from ends of our own: a pipe is reopened through
/proc (a private file description, so O_NONBLOCK never reaches the client, a
parent shell, or a stderr that shares stdout's pipe); a socket is used with
MSG_DONTWAIT per call, leaving its flags alone.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import logging
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable
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

    Pipes and sockets are served from the event loop; anything else (or ends
    that cannot be opened for it) by the SDK's own stdio transport.
    """
    wire = _Wire.claim() if serves_without_threads() else None
    if wire is None:
        await server.run_stdio_async()
        return
    # MCPServer.run_stdio_async runs its low-level server on the SDK's transport;
    # there is no public way to hand it other streams, so this does the same.
    lowlevel = server._lowlevel_server
    try:
        async with _streams(wire) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        wire.release()


class _End:
    """One end of the wire, read or written without blocking and without changing
    what other holders of the same pipe or socket see (no shared O_NONBLOCK)."""

    def __init__(self, std: int, flags: int) -> None:
        if stat.S_ISFIFO(os.fstat(std).st_mode):
            # Reopening the pipe gives a file description of our own: non-blocking
            # here, while a parent or a stderr sharing the original stays blocking.
            fd = os.open(f"/proc/self/fd/{std}", flags | os.O_NONBLOCK | os.O_CLOEXEC)
            self.fd = fd
            self.read: Callable[[int], bytes] = lambda size: os.read(fd, size)
            self.write: Callable[[memoryview], int] = lambda data: os.write(fd, data)
            self._socket: socket.socket | None = None
        else:  # a socket cannot be reopened; MSG_DONTWAIT makes single calls non-blocking
            sock = socket.socket(fileno=fcntl.fcntl(std, fcntl.F_DUPFD_CLOEXEC, 3))
            self.fd = sock.fileno()
            self.read = lambda size: sock.recv(size, socket.MSG_DONTWAIT)
            self.write = lambda data: sock.send(data, socket.MSG_DONTWAIT)
            self._socket = sock

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self.fd)


@dataclass
class _Wire:
    """Private ends of fds 0 and 1, and duplicates of the originals to put back."""

    reader: _End
    writer: _End
    saved: tuple[int, int]

    @classmethod
    def claim(cls) -> _Wire | None:
        """Take the wire off fds 0 and 1; None (nothing changed) if it cannot be opened."""
        sys.stdout.flush()
        opened: list[_End] = []
        saved: list[int] = []
        try:
            opened.append(_End(0, os.O_RDONLY))
            opened.append(_End(1, os.O_WRONLY))
            saved.extend(fcntl.fcntl(std, fcntl.F_DUPFD_CLOEXEC, 3) for std in (0, 1))
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            logger.info("stdio served by the SDK's transport (%s)", exc.strerror or exc)
            for end in opened:
                end.close()
            for fd in saved:
                os.close(fd)
            return None
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
        os.dup2(2, 1)
        return cls(opened[0], opened[1], (saved[0], saved[1]))

    def release(self) -> None:
        for std, fd in enumerate(self.saved):
            with contextlib.suppress(OSError):
                os.dup2(fd, std)
            with contextlib.suppress(OSError):
                os.close(fd)
        self.reader.close()
        self.writer.close()


@contextlib.asynccontextmanager
async def _streams(
    wire: _Wire,
) -> AsyncIterator[
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
    ]
]:
    """The read and write streams a low-level MCP server runs on, over the wire."""
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_read_messages, wire.reader, incoming_send)
        tg.start_soon(_write_messages, wire.writer, outgoing_receive)
        yield incoming, outgoing


async def _read_messages(
    end: _End, messages: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    """Parse each line read from ``fd`` into a message (or the error saying why not)."""
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True
    )
    partial: list[str] = []  # the current line's text so far (no quadratic re-joining)
    async with messages:
        while True:
            try:
                chunk = end.read(_READ_SIZE)
            except BlockingIOError:
                await anyio.wait_readable(end.fd)
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


async def _write_messages(end: _End, messages: MemoryObjectReceiveStream[SessionMessage]) -> None:
    """Write each message as one line; once the client stops reading, drop the rest."""
    gone = False
    async with messages:
        async for session_message in messages:
            if gone:
                continue
            line = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
            try:
                await _write_all(end, (line + "\n").encode("utf-8"))
            except (BrokenPipeError, ConnectionResetError):
                logger.info("the stdio client stopped reading; dropping further output")
                gone = True


async def _write_all(end: _End, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = end.write(view)
        except BlockingIOError:
            await anyio.wait_writable(end.fd)
            continue
        view = view[written:]
