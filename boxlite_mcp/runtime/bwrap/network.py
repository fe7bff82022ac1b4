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
from pathlib import Path

from ..network.dns import DnsServer
from ..network.netns import Netns
from ..network.policy import NetPolicy, Verdict
from ..network.proxy import PROXY_PORT, Counters, EgressProxy, Interception
from ..network.secrets import Substitution
from ..network.tls import BoxCA, system_bundle, upstream_context
from ..types import BoxOptions

RESOLV_CONF = "# boxlite-mcp: DNS answered on the host per the box's policy\nnameserver 127.0.0.1\n"
#: The host's CAs plus the box's own (boxes with secrets), where the box's programs look.
CA_BUNDLE = "/etc/boxlite-mcp/ca-bundle.pem"
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
)
RECENT_DENIALS = 20


@dataclass(frozen=True)
class Denial:
    """One refused destination, for ``box_info``."""

    at: float  # time.time()
    destination: str
    reason: str


@dataclass(frozen=True)
class NetworkFiles:
    """What a box with network gets bound in at start, and its CA (boxes with secrets)."""

    ro_files: tuple[tuple[str, str], ...]
    ca: BoxCA | None

    def interception(self, ca_file: str | None) -> Interception | None:
        return None if self.ca is None else Interception(self.ca, upstream_context(ca_file))


def prepare_files(box_dir: Path, options: BoxOptions, lower: Path) -> NetworkFiles:
    """resolv.conf, and for a box with secrets a fresh CA and the bundle trusting it.

    The CA's key stays in this process; only its certificate reaches the box.
    """
    _unlink_resolv_conf(box_dir / "upper", lower)
    resolv = box_dir / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    files = [(str(resolv), "/etc/resolv.conf")]
    ca = None
    if options.secrets:
        ca = BoxCA(box_dir.name, box_dir)
        bundle = box_dir / "ca-bundle.pem"
        bundle.write_bytes(system_bundle().rstrip(b"\n") + b"\n" + ca.pem())
        files.append((str(bundle), CA_BUNDLE))
    return NetworkFiles(tuple(files), ca)


def _unlink_resolv_conf(upper: Path, lower: Path) -> None:
    """Where the image's /etc/resolv.conf is a symlink (often to a file the image lacks,
    which bubblewrap cannot bind over), put a plain file in the box's own layer."""
    own = upper / "etc" / "resolv.conf"
    effective = own if own.exists() or own.is_symlink() else lower / "etc" / "resolv.conf"
    if not effective.is_symlink():
        return
    if own.is_symlink():
        own.unlink()
    if not own.parent.is_dir():
        own.parent.mkdir(parents=True)
        if (lower / "etc").is_dir():
            own.parent.chmod((lower / "etc").stat().st_mode & 0o7777)
    own.write_text("")
    own.chmod(0o644)


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


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BoxNetwork:
    """The host side of one running box's network; ``close`` ends all of it."""

    def __init__(
        self,
        policy: NetPolicy,
        netns: Netns,
        host_port_refused: Callable[[int], str | None],
        substitution: Substitution,
        tls: Interception | None,
    ) -> None:
        self.policy = policy
        self.netns = netns
        self.substitution = substitution
        self.denials: collections.deque[Denial] = collections.deque(maxlen=RECENT_DENIALS)
        self.proxy = EgressProxy(
            policy,
            self._denied,
            host_port_refused=host_port_refused,
            substitution=substitution,
            tls=tls,
        )
        self.dns = DnsServer(policy, self._denied)

    @classmethod
    async def start(
        cls,
        init_pid: int,
        policy: NetPolicy,
        host_port_refused: Callable[[int], str | None],
        substitution: Substitution | None = None,
        tls: Interception | None = None,
    ) -> BoxNetwork:
        net = cls(policy, Netns(init_pid), host_port_refused, substitution or Substitution({}), tls)
        try:
            await net.proxy.serve(await net.netns.listen_tcp("127.0.0.1", PROXY_PORT))
            await net.dns.serve(await net.netns.bind_udp("127.0.0.1", 53))
        except BaseException:
            net.close()
            raise
        return net

    def env(self) -> dict[str, str]:
        """Every exec's proxy variables, CA variables and secret placeholders."""
        env = proxy_env()
        if self.proxy.tls is not None:
            env.update(dict.fromkeys(CA_VARIABLES, CA_BUNDLE))
        env.update(self.substitution.env())
        return env

    def _denied(self, verdict: Verdict) -> None:
        # The box chose the destination's text: kept short in what box_info shows.
        self.denials.append(
            Denial(time.time(), _clip(verdict.destination), _clip(verdict.reason, 600))
        )

    @property
    def counters(self) -> Counters:
        return self.proxy.counters

    def close(self) -> None:
        self.proxy.close()
        self.dns.close()
        self.netns.close()
