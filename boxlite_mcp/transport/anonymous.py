"""Serving HTTP without bearer auth: where it is allowed, and what it means for owners.

Without tokens an HTTP request has no principal. Clients of the 2026-07-28
protocol carry no session either, so all of them are one owner, ``anonymous``:
each sees, uses and removes the others' boxes (legacy sessions and SSE
connections each own theirs). That is acceptable on a loopback address, where only
this machine's users reach the server; on any other address anyone who can reach
the port runs commands, so the server refuses to start there unless the operator
says ``--allow-anonymous`` (for instance because a proxy in front authenticates).

The rule (which binds count as loopback, and what the refusal says)
lives here; what the startup log and ``runtime_info`` say lives with the owners
(``sessions/owners.py``), the one module both the app and the server may read.
Host names other than ``localhost`` count as non-loopback: deciding otherwise
would need a DNS lookup whose answer can change after the check.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from ..settings import Settings

_HOW_TO_FIX: Final = (
    "give bearer tokens (BOXLITE_MCP_AUTH_TOKENS='token:subject' or --auth-tokens-file), "
    "listen on a loopback address (--host 127.0.0.1), or, if something in front of this "
    "server authenticates, pass --allow-anonymous (BOXLITE_MCP_ALLOW_ANONYMOUS=1)"
)


class AnonymousBindError(ValueError):
    """Serving HTTP without auth on a non-loopback address was not allowed."""


def is_loopback_host(host: str) -> bool:
    """Whether a ``--host`` value binds loopback only (wildcards and names other than
    ``localhost`` do not)."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_anonymous_bind(settings: Settings, *, authenticated: bool) -> None:
    """Refuse HTTP without bearer auth on a non-loopback address unless allowed.

    stdio serves one local client and is never refused.
    """
    if settings.transport == "stdio" or authenticated or settings.allow_anonymous:
        return
    if is_loopback_host(settings.host):
        return
    where = settings.host or "all interfaces"
    raise AnonymousBindError(
        f"refusing to serve {settings.transport} on --host {where} without bearer auth: "
        "anyone who can reach the port could run commands in boxes, and every 2026-07-28 "
        f"client would be the same owner; {_HOW_TO_FIX}"
    )
