"""A TCP proxy on 127.0.0.1 that cuts the connections it carries, as a flaky network would.

``FaultProxy(upstream_host, upstream_port, policy)`` listens on a free port; every
connection accepted is paired with a fresh connection to the upstream server and
bytes are copied both ways unchanged, until the connection's ``CutPlan`` says
otherwise: at the chosen byte offset of a direction, the bytes before it are
forwarded and both sides are closed (RST or FIN). The offset can fall anywhere:
inside a request's head or body, inside a response, inside an SSE event or a
WebSocket frame. ``ConnectionTracker`` labels each cut with where it landed.

    async with FaultProxy("127.0.0.1", 8000, CutPolicy(probability=0.3, seed=1)) as proxy:
        ...  # point clients at proxy.url
        print(proxy.stats.cuts)

``policy`` may be replaced at any time (``proxy.policy = ...``); connections opened
afterwards follow the new one. ``pause()`` makes new connections wait (a server
that is slow to accept), ``cut_all()`` cuts every open connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from .policy import DIRECTIONS, CutPolicy, Direction
from .tracker import ConnectionTracker

log = logging.getLogger("faultproxy")

READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Cut:
    """One cut that fired."""

    connection: int
    direction: Direction
    offset: int
    where: str  # ConnectionTracker.label
    route: str
    mode: str


@dataclass
class ProxyStats:
    """Counters of one proxy's life."""

    connections: int = 0
    refused: int = 0  # upstream unreachable: the client connection was closed at once
    bytes: Counter[str] = field(default_factory=Counter)
    cuts: list[Cut] = field(default_factory=list)

    def cuts_by_where(self) -> Counter[str]:
        return Counter(cut.where for cut in self.cuts)

    def cuts_by_route(self) -> Counter[str]:
        return Counter(cut.route for cut in self.cuts)


class _Connection:
    """One client connection and its upstream twin."""

    def __init__(
        self,
        proxy: FaultProxy,
        number: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.policy = proxy.policy
        self.number = number
        self.exchange = 0
        self.plan = self.policy.plan(number, 0)
        self.client_reader, self.client_writer = client
        self.tracker = ConnectionTracker()
        self.sent: dict[Direction, int] = dict.fromkeys(DIRECTIONS, 0)
        self.base: dict[Direction, int] = dict.fromkeys(DIRECTIONS, 0)  # where offsets count from
        self.body_base: int | None = None  # where the current response's body began
        self.cut: Cut | None = None
        self.upstream_writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        proxy = self.proxy
        try:
            up_reader, up_writer = await asyncio.open_connection(
                proxy.upstream_host, proxy.upstream_port
            )
        except OSError:
            proxy.stats.refused += 1
            _abort(self.client_writer)
            return
        self.upstream_writer = up_writer
        pumps = [
            asyncio.create_task(self._pump("up", self.client_reader, up_writer)),
            asyncio.create_task(self._pump("down", up_reader, self.client_writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if self.cut is None:
                # One side finished cleanly (EOF): let the other drain, as TCP would.
                await asyncio.wait(pumps)
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.close(self.plan.mode if self.cut is not None else "close")

    async def _pump(
        self, direction: Direction, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while self.cut is None:
            try:
                data = await reader.read(READ_BYTES)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            if direction == "up":
                start = self.tracker.up(data)
                if start is not None and self.policy.per == "exchange":
                    if start and not await self._forward("up", data[:start], writer):
                        return
                    self._new_exchange()
                    data = data[start:]
            if not await self._forward(direction, data, writer):
                return

    def _new_exchange(self) -> None:
        self.exchange += 1
        self.plan = self.policy.plan(self.number, self.exchange, self.tracker.stream)
        self.base = dict(self.sent)
        self.body_base = None

    async def _forward(
        self, direction: Direction, data: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Write ``data``, or the part before this direction's cut and cut; False once cut."""
        offset = self.plan.offset(direction)
        base = self.base[direction]
        if direction == "down" and self.plan.in_body and offset is not None:
            if self.body_base is None and (end := self.tracker.head_end(data)) is not None:
                self.body_base = self.sent["down"] + end
            base = self.body_base if self.body_base is not None else -1
        keep = len(data)
        cut_at = base + offset if offset is not None and base >= 0 else None
        if cut_at is not None and self.sent[direction] <= cut_at < self.sent[direction] + keep:
            keep = cut_at - self.sent[direction]
        if keep:
            if direction == "down":  # the tracker sees what the client gets, so labels are exact
                self.tracker.down(data[:keep])
            writer.write(data[:keep])
            self.sent[direction] += keep
            self.proxy.stats.bytes[direction] += keep
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                return False
        if keep < len(data) and self.cut is None:
            self._fire(direction, cut_at if cut_at is not None else 0)
            return False
        return self.cut is None

    def _fire(self, direction: Direction, offset: int) -> None:
        self.cut = Cut(
            self.number,
            direction,
            offset,
            self.tracker.label(direction),
            self.tracker.route,
            self.plan.mode,
        )
        self.proxy.stats.cuts.append(self.cut)
        log.debug(
            "cut connection %d %s at byte %d (%s, %s)",
            self.number,
            direction,
            offset,
            self.cut.where,
            self.cut.route,
        )
        self.close(self.plan.mode)

    def force_cut(self) -> None:
        """Cut now, whatever the plan (``FaultProxy.cut_all``)."""
        if self.cut is None:
            self._fire("down", self.sent["down"])

    def close(self, mode: str) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            if mode == "reset":
                _abort(writer)
            else:
                with contextlib.suppress(Exception):
                    writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: SO_LINGER 0, then abort the transport."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


class FaultProxy:
    """Listens on ``host``:``port`` (0: a free port); forwards to the upstream; cuts."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        policy: CutPolicy | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.policy = policy or CutPolicy()
        self.host = host
        self.port = port
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._live: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.Event()
        self._accepting.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._accepting.wait()
        number = self.stats.connections
        self.stats.connections += 1
        connection = _Connection(self, number, (reader, writer))
        self._live.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # the top of a task asyncio.start_server made: nobody awaits it
        finally:
            self._live.discard(connection)
            if task is not None:
                self._tasks.discard(task)

    def pause(self) -> None:
        """New connections wait (accepted by the kernel, not served) until ``resume``."""
        self._accepting.clear()

    def resume(self) -> None:
        self._accepting.set()

    def cut_all(self) -> int:
        """Cut every open connection now; returns how many."""
        live = list(self._live)
        for connection in live:
            connection.force_cut()
        return len(live)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        self.resume()
        for connection in list(self._live):
            connection.close("reset")
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
