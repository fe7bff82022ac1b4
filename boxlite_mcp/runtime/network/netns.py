"""Sockets that live in a box's network namespace, served by this process.

A socket belongs to the network namespace its creator was in when it was made,
for the socket's whole life. So a short-lived thread of this process enters the
box's namespace (``setns``, which for network namespaces acts per thread), makes
a socket, and ends; the event loop then uses that socket like any other. That is
how the filtering proxy and DNS listen on the box's ``127.0.0.1`` and how
``box_expose`` connects to a service in the box, with:

- no relay process (no ``socat``, nothing from apt, nothing the box can see or
  signal: the server is not in the box's PID namespace);
- no extra hop for the bytes (the proxy's accepted connection *is* the box's
  connection);
- nothing the box's root can change: the namespace belongs to the host's user
  namespace, so box root has no CAP_NET_ADMIN over it (no routes, addresses,
  firewall rules, raw sockets), and its only way out is the proxy's port.

``setns`` is not in Python 3.11's ``os`` module, hence ``ctypes`` (one call).
The thread is never one of a shared pool, so no other work ever runs in the
box's namespace by accident; that is also why ``run`` hands the result back
through an asyncio future rather than use ``anyio.to_thread`` (a pooled thread
would stay in the box's namespace after ``setns``).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot enter the box's network namespace: {os.strerror(err)}")


class Netns:
    """A handle on one network namespace (an open fd of ``/proc/PID/ns/net``)."""

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def inode(self) -> int:
        return os.fstat(self.fd).st_ino

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a new thread inside the namespace; its result (a socket, say)."""
        if self.fd < 0:
            raise OSError("the box's network namespace is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        fd = self.fd

        def deliver(ok: bool, value: object) -> None:
            if future.cancelled():
                if ok and isinstance(value, socket.socket):
                    value.close()
                return
            if ok:
                future.set_result(value)  # type: ignore[arg-type]
            else:
                assert isinstance(value, BaseException)
                future.set_exception(value)

        def target() -> None:
            try:
                _setns(fd)
                result: object = fn()
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(deliver, False, exc)
            else:
                loop.call_soon_threadsafe(deliver, True, result)

        threading.Thread(target=target, name="boxlite-netns", daemon=True).start()
        return await future

    async def make_socket(
        self, kind: socket.SocketKind, setup: Callable[[socket.socket], None]
    ) -> socket.socket:
        """A non-blocking IPv4 socket made in the namespace; ``setup`` binds (and
        listens) there, and a socket it fails on is closed, never handed back."""

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, kind)
            try:
                setup(sock)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock

        return await self.run(make)

    async def listen_tcp(self, host: str, port: int) -> socket.socket:
        def setup(sock: socket.socket) -> None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(256)

        return await self.make_socket(socket.SOCK_STREAM, setup)

    async def bind_udp(self, host: str, port: int) -> socket.socket:
        return await self.make_socket(socket.SOCK_DGRAM, lambda sock: sock.bind((host, port)))

    async def tcp_socket(self) -> socket.socket:
        """An unconnected TCP socket in the namespace (connect it from the loop)."""
        return await self.make_socket(socket.SOCK_STREAM, lambda sock: None)
