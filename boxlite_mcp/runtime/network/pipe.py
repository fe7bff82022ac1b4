"""Byte plumbing both network services share: a listener's connection tasks and the
two-way copy between stream pairs (egress proxy tunnels, exposed ports).

One place for the rules: each accepted connection runs in a task the listener
tracks, so ``close`` ends the listener and every open connection; a connection's
own failure never reaches the event loop and always closes its socket;
half-close is passed on (``write_eof``), so protocols that end a request with a
shutdown still work; an error on one side closes the other; byte counts go to
the caller's counter functions. asyncio streams rather than anyio's: the proxy,
DNS and ``box_expose`` that use it read and write asyncio stream pairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: What ends one connection quietly: the peer went away, sent garbage or too much.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
)


class Listener:
    """A TCP listener whose connections each run ``handle`` in a tracked task."""

    def __init__(
        self,
        handle: Handler,
        what: str,
        max_connections: int | None = None,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self._handle = handle
        self._what = what  # for the log line of an unexpected failure
        #: Open connections at most; more are closed at once (None: no limit).
        self.max_connections = max_connections
        #: Told of each connection closed at once because ``max_connections`` were open.
        self._on_refused = on_refused
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def serve(
        self,
        *,
        sock: socket.socket | None = None,
        host: str | None = None,
        port: int = 0,
        limit: int = CHUNK,
    ) -> None:
        """Listen on ``sock`` (made elsewhere) or on ``host:port`` (0: any free port)."""
        if sock is not None:
            self._server = await asyncio.start_server(self._run, sock=sock, limit=limit)
            return
        assert host is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = await asyncio.start_server(self._run, host, port, family=family, limit=limit)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.max_connections is not None and len(self._tasks) > self.max_connections:
                self._on_refused()
                return  # closed at once: too many are open already
            await self._handle(reader, writer)
        except CONNECTION_ERRORS:
            pass
        except Exception as exc:  # one connection's bug must not reach the event loop
            log.warning("a %s connection failed: %s", self._what, type(exc).__name__)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    a_to_b: Callable[[int], None] = lambda n: None,
    b_to_a: Callable[[int], None] = lambda n: None,
) -> None:
    """Until both directions end; closes ``b_writer`` (the caller closes ``a_writer``)."""
    try:
        await asyncio.gather(copy(a_reader, b_writer, a_to_b), copy(b_reader, a_writer, b_to_a))
    finally:
        b_writer.close()


async def copy(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    count: Callable[[int], None] = lambda n: None,
) -> None:
    """``src`` to ``dst`` until ``src`` ends, then half-close ``dst``; an error closes it."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            count(len(data))
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        dst.close()
