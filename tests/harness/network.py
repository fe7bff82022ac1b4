"""The operator's network list every runtime under test gets (contract suite).

One loopback port, chosen once per test session, is opened to boxes as
``host.boxlite.internal:WEB_PORT``; tests serve their "internet" there. Nothing
else is reachable from a box in the suite (no ``*``: no public traffic either).
"""

from __future__ import annotations

import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WEB_PORT = _free_port()
NET_ALLOW = [f"host.boxlite.internal:{WEB_PORT}"]
