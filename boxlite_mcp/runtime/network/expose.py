"""``box_expose``: a host listener whose connections reach a TCP port inside a box.

Each accepted connection gets a socket made inside the box's network namespace
(``netns``) and connected to the box's ``127.0.0.1:PORT``, then bytes are copied
both ways (``pipe``): raw TCP, so HTTP, WebSocket or any protocol works. The
listener binds the server's loopback by default (the operator may choose the
address), and it ends with the box. Boxes' own proxies refuse exposed ports
(see ``EgressProxy``), so one box cannot reach another's service this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket

from .netns import Netns
from .pipe import pipe

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0


class ExposedService:
    """Forwards ``host:host_port`` to the box's ``127.0.0.1:box_port``; owns ``netns``."""

    def __init__(self, netns: Netns, box_port: int) -> None:
        self.netns = netns
        self.box_port = box_port
        self.host = ""
        self.host_port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.host_port}/"

    async def start(self, bind_host: str) -> None:
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._server = await asyncio.start_server(self._handle, bind_host, 0, family=family)
        self.host = str(ipaddress.ip_address(bind_host))
        self.host_port = int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        self.netns.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            sock = await self.netns.tcp_socket()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await asyncio.get_running_loop().sock_connect(
                        sock, ("127.0.0.1", self.box_port)
                    )
            except BaseException:
                sock.close()
                raise
            box_reader, box_writer = await asyncio.open_connection(sock=sock)
            await pipe(reader, writer, box_reader, box_writer)
        except (OSError, TimeoutError):
            pass  # nothing listens in the box (yet): the client sees the connection close
        except Exception as exc:  # one connection's bug must not reach the event loop
            log.warning("a box_expose connection failed: %s", type(exc).__name__)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
