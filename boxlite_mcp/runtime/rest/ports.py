"""Ports a box publishes: 0.9's ``PortSpec`` at create, and what this client knows of them.

A BoxLite 0.9 server forwards box ports only when they are named in the create
request (``ports: [PortSpec]``); it has no call to add one later, and its Box
answer does not say which host port it chose. So the client picks the host port
itself (a free one on this machine, for a server on this machine's loopback)
and remembers the mapping for ``box_expose`` and ``box_info``. A server on
another host gets ``host_ip`` unset (the server's default address) and the URL
names that server's host. What is remembered lives as long as this process: a
box created by an earlier run has ports the client cannot name.

0.10 exposes a port with the service tunnel after create (asked each time: a
tunnel ends with the box), so nothing of it is kept here.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..types import ExposedPort


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_specs(
    server_url: str, ports: list[int]
) -> tuple[list[dict[str, object]], list[ExposedPort]]:
    """0.9 ``PortSpec`` items for ``ports``, and where each will be reached."""
    host = urlsplit(server_url).hostname or "127.0.0.1"
    local = _loopback(host)
    bind = ("::1" if ":" in host else "127.0.0.1") if local else None
    specs: list[dict[str, object]] = []
    exposed: list[ExposedPort] = []
    for port in ports:
        host_port = _free_port(bind or "127.0.0.1")
        spec: dict[str, object] = {"guest_port": port, "host_port": host_port, "protocol": "tcp"}
        if bind is not None:
            spec["host_ip"] = bind
        specs.append(spec)
        shown = bind or host
        shown = f"[{shown}]" if ":" in shown else shown
        exposed.append(
            ExposedPort(port=port, url=f"http://{shown}:{host_port}/", host_port=host_port)
        )
    return specs, exposed


class PublishedPorts:
    """Per box id: the ports this client published at create, by box port."""

    def __init__(self) -> None:
        self._by_box: dict[str, dict[int, ExposedPort]] = {}

    def add(self, box_id: str, exposed: ExposedPort) -> None:
        self._by_box.setdefault(box_id, {})[exposed.port] = exposed

    def get(self, box_id: str, port: int) -> ExposedPort | None:
        return self._by_box.get(box_id, {}).get(port)

    def of(self, box_id: str) -> list[ExposedPort]:
        return [e for _, e in sorted(self._by_box.get(box_id, {}).items())]

    def forget(self, box_id: str) -> None:
        self._by_box.pop(box_id, None)
