"""The operator's network list every runtime under test gets (contract suite).

One loopback port, chosen once per test session, is opened to boxes as
``host.boxlite.internal:WEB_PORT``; tests serve their "internet" there. Nothing
else is reachable from a box in the suite (no ``*``: no public traffic either).
The operator's secrets are ``SECRETS`` (the REST backends get them per box, in
the create request, as BoxLite's SecretSpec).
"""

from __future__ import annotations

import secrets
import socket

from boxlite_mcp.runtime.network.secrets import Secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WEB_PORT = _free_port()
NET_ALLOW = [f"host.boxlite.internal:{WEB_PORT}"]

#: A secret every runtime under test holds (value random per session), for the
#: host.boxlite.internal server tests start.
SECRET_VALUE = "contract-" + secrets.token_hex(16)
SECRETS = {"CONTRACT_TOKEN": Secret("CONTRACT_TOKEN", ("host.boxlite.internal",), SECRET_VALUE)}
