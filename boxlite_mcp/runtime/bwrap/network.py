"""A bwrap box's network: its own namespace, reached out of only through the proxy.

Mechanism (why, in ``network.netns`` and ``network.proxy``): a box with network
gets a network namespace of its own, exactly like a box without, holding only
loopback: no route, no interface to the host, nothing of the host's loopback,
LAN or metadata service. Right after the sandbox starts (before any process of
the box runs), this process opens sockets *inside* that namespace and serves:

- the egress proxy on the box's ``127.0.0.1:3128`` (HTTP CONNECT, absolute-URL
  HTTP, SOCKS5), its policy and resolver on the host side;
- DNS on the box's ``127.0.0.1:53`` (see ``network.dns``), answering per policy.

The box gets ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` in every exec's
environment and a read-only ``/etc/resolv.conf`` naming 127.0.0.1. Box root can
change neither the policy (it lives in this process), nor routes, addresses or
firewall rules (the namespace belongs to the host's user namespace, in which box
root has no capability), nor ``/etc/resolv.conf`` (a read-only bind it cannot
unmount). Needs nothing beyond Python and bubblewrap: no apt package.

Programs that ignore the proxy variables have no way out at all (connects fail
at once with "network unreachable"), which is the safe failure.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..network.dns import DnsServer
from ..network.netns import Netns
from ..network.policy import NetPolicy, Verdict
from ..network.proxy import PROXY_PORT, Counters, EgressProxy

RESOLV_CONF = "# boxlite-mcp: DNS answered on the host per the box's policy\nnameserver 127.0.0.1\n"
RECENT_DENIALS = 20


@dataclass(frozen=True)
class Denial:
    """One refused destination, for ``box_info``."""

    at: float  # time.time()
    destination: str
    reason: str


def proxy_env() -> dict[str, str]:
    """What every exec in a box with network gets (lower case too: tools differ)."""
    url = f"http://127.0.0.1:{PROXY_PORT}"
    env = {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "ALL_PROXY": f"socks5h://127.0.0.1:{PROXY_PORT}",
        "NO_PROXY": "localhost,127.0.0.1,::1",
    }
    env.update({k.lower(): v for k, v in env.items()})
    return env


class BoxNetwork:
    """The host side of one running box's network; ``close`` ends all of it."""

    def __init__(self, policy: NetPolicy, netns: Netns,
                 host_port_refused: Callable[[int], str | None]) -> None:
        self.policy = policy
        self.netns = netns
        self.denials: collections.deque[Denial] = collections.deque(maxlen=RECENT_DENIALS)
        self.proxy = EgressProxy(policy, self._denied, host_port_refused=host_port_refused)
        self.dns = DnsServer(policy, self._denied)

    @classmethod
    async def start(cls, init_pid: int, policy: NetPolicy,
                    host_port_refused: Callable[[int], str | None]) -> BoxNetwork:
        net = cls(policy, Netns(init_pid), host_port_refused)
        try:
            await net.proxy.serve(await net.netns.listen_tcp("127.0.0.1", PROXY_PORT))
            await net.dns.serve(await net.netns.bind_udp("127.0.0.1", 53))
        except BaseException:
            net.close()
            raise
        return net

    def _denied(self, verdict: Verdict) -> None:
        self.denials.append(Denial(time.time(), verdict.destination, verdict.reason))

    @property
    def counters(self) -> Counters:
        return self.proxy.counters

    def close(self) -> None:
        self.proxy.close()
        self.dns.close()
        self.netns.close()
