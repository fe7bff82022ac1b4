"""The host's own addresses, so that no box reaches the host through a public one.

A server listening on ``0.0.0.0`` is reachable on every address of the host; if
one of them is public, "the public internet" would include the host itself. The
policy refuses these addresses unless an IP/CIDR entry lists them. Read from
``/proc`` (no ``ip`` program, no netlink library needed).
"""

from __future__ import annotations

import contextlib
import ipaddress

from .policy import IPAddress


def host_addresses(proc: str = "/proc") -> frozenset[IPAddress]:
    """Every local IPv4 (``fib_trie``'s ``/32 host LOCAL``) and IPv6 (``if_inet6``) address."""
    found: set[IPAddress] = set()
    with contextlib.suppress(OSError):
        with open(f"{proc}/net/fib_trie") as f:
            previous = ""
            for line in f:
                text = line.strip()
                if text == "/32 host LOCAL" and previous.startswith("|-- "):
                    with contextlib.suppress(ValueError):
                        found.add(ipaddress.IPv4Address(previous[4:]))
                previous = text
    with contextlib.suppress(OSError):
        with open(f"{proc}/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if fields and len(fields[0]) == 32:
                    with contextlib.suppress(ValueError):
                        found.add(ipaddress.IPv6Address(int(fields[0], 16)))
    return frozenset(found)
