"""0.9's ``ports`` (PortSpec at create) on a runtime that exposes ports on demand.

A 0.9 create request names the box ports to forward and, optionally, the host
port and address; the forward lasts as long as the box. The runtime under this
server (bwrap) exposes a port with ``Box.expose`` only while the box runs, and
a stop ends it. So this server holds its own listener per PortSpec from create
until remove: each connection asks the runtime for the box's exposed port
(the same one while it runs) and copies bytes to it; while the box is stopped
a connection is closed at once, as a 0.9 forward to a stopped VM would be.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import InvalidArgumentError, UnsupportedError
from boxlite_mcp.runtime.network.pipe import Listener, pipe
from boxlite_mcp.runtime.types import check_ports

BoxGetter = Callable[[], Awaitable[Box]]


def parse_specs(specs: object, default_host: str) -> list[tuple[str, int, int]]:
    """(host_ip, host_port, guest_port) for each PortSpec; 400s name the bad one."""
    if not isinstance(specs, list):
        raise InvalidArgumentError("ports must be a list of PortSpec objects")
    out: list[tuple[str, int, int]] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise InvalidArgumentError(f"ports[{index}] must be a PortSpec object")
        host_port = spec.get("host_port", 0)
        if not isinstance(host_port, int) or isinstance(host_port, bool):
            raise InvalidArgumentError(f"ports[{index}].host_port must be an integer 0..65535")
        if not 0 <= host_port <= 65535:
            raise InvalidArgumentError(f"ports[{index}].host_port must be 0..65535")
        if spec.get("protocol", "tcp") != "tcp":
            raise UnsupportedError(f"ports[{index}]: only protocol tcp is forwarded here")
        host_ip = spec.get("host_ip") or default_host
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgumentError(
                f"ports[{index}].host_ip {host_ip!r} is not an IP address"
            ) from None
        out.append((str(host_ip), host_port, 0))
    try:
        guests = check_ports([spec.get("guest_port") for spec in specs])
    except ValueError as exc:
        raise InvalidArgumentError(str(exc).replace("ports entry", "ports guest_port")) from None
    out = [(host, port, guest) for (host, port, _), guest in zip(out, guests, strict=True)]
    return out


class PublishedPorts:
    """The listeners of every box's 0.9 ports, by the runtime's box id."""

    def __init__(self) -> None:
        self._by_box: dict[str, list[Listener]] = {}

    async def publish(
        self, box_id: str, get_box: BoxGetter, specs: list[tuple[str, int, int]]
    ) -> None:
        """Listen for each spec (all or none)."""
        listeners: list[Listener] = []
        try:
            for host_ip, host_port, guest in specs:
                listener = Listener(_forwarder(get_box, guest), "published port")
                await listener.serve(host=host_ip, port=host_port)
                listeners.append(listener)
        except OSError as exc:
            for listener in listeners:
                listener.close()
            raise InvalidArgumentError(
                f"cannot publish a port on {host_ip}:{host_port}: {exc.strerror or exc}; "
                "choose another host_port (0 picks a free one)"
            ) from None
        self._by_box[box_id] = listeners

    def close(self, box_id: str) -> None:
        for listener in self._by_box.pop(box_id, []):
            listener.close()

    def close_all(self) -> None:
        for box_id in list(self._by_box):
            self.close(box_id)


def _forwarder(
    get_box: BoxGetter, guest: int
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box = await get_box()
        if not (await box.info()).running:
            return  # a stopped box forwards nothing: the client sees the close
        exposed = await box.expose(guest)
        assert exposed.host_port is not None
        host = exposed.url.removeprefix("http://").rsplit(":", 1)[0].strip("[]")
        box_reader, box_writer = await asyncio.open_connection(host, exposed.host_port)
        await pipe(reader, writer, box_reader, box_writer)

    return forward
