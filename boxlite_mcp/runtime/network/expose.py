"""``box_expose``: a host listener whose connections reach a TCP port inside a box.

Each accepted connection gets a socket made inside the box's network namespace
(``netns``) and connected to the box's ``127.0.0.1:PORT``, then bytes are copied
both ways (``pipe``): raw TCP, so HTTP, WebSocket or any protocol works. The
listener binds the server's loopback by default (the operator may choose the
address), and it ends with the box. Boxes' own proxies refuse exposed ports
(see ``EgressProxy``), so one box cannot reach another's service this way.
asyncio rather than anyio: ``sock_connect`` connects the namespace's socket from
the loop, and its streams go to ``pipe``, which copies asyncio stream pairs.
"""

from __future__ import annotations

import asyncio
import ipaddress

from .netns import Netns
from .pipe import Listener, pipe

CONNECT_TIMEOUT = 5.0


class ExposedService:
    """Forwards ``host:host_port`` to the box's ``127.0.0.1:box_port``; owns ``netns``."""

    def __init__(self, netns: Netns, box_port: int) -> None:
        self.netns = netns
        self.box_port = box_port
        self.host = ""
        self.host_port = 0
        self._listener = Listener(self._handle, "box_expose")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.host_port}/"

    async def start(self, bind_host: str, host_port: int = 0) -> None:
        """Listen on ``bind_host:host_port`` (0: a free port)."""
        await self._listener.serve(host=bind_host, port=host_port)
        self.host = str(ipaddress.ip_address(bind_host))
        self.host_port = self._listener.address[1]

    def close(self) -> None:
        self._listener.close()
        self.netns.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Nothing listening in the box (yet) ends in OSError: the client sees a close.
        sock = await self.netns.tcp_socket()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.box_port))
        except BaseException:
            sock.close()
            raise
        box_reader, box_writer = await asyncio.open_connection(sock=sock)
        await pipe(reader, writer, box_reader, box_writer)
