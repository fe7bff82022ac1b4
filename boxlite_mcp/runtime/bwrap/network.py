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
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidArgumentError, InvalidStateError
from ..network.dns import DnsServer
from ..network.expose import ExposedService
from ..network.hostaddrs import host_addresses
from ..network.netns import Netns
from ..network.policy import AllowList, NetPolicy, PolicyError, Verdict, narrowed
from ..network.proxy import PROXY_PORT, Counters, EgressProxy, Interception
from ..network.secrets import Secret, SecretError, Substitution, choose, for_box
from ..network.tls import BoxCA, system_bundle, upstream_context
from ..types import BoxOptions, ExposedPort, NetworkDenial, NetworkStatus
from . import idmap

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


class NetworkRules:
    """What the operator set for every box's network on this runtime, in one place:
    the widest destination list, secrets, the CA file, where box_expose listens, and
    the server's own ports."""

    def __init__(
        self,
        net_allow: Sequence[str] | None = None,
        *,
        expose_host: str = "127.0.0.1",
        server_ports: Iterable[int] = (),
        secrets: Mapping[str, Secret] | None = None,
        net_ca_file: str | None = None,
    ) -> None:
        try:
            self.net_allow = AllowList.parse(["*"] if net_allow is None else net_allow)
        except PolicyError as exc:
            raise InvalidArgumentError(f"--net-allow: {exc}") from None
        self.expose_host = expose_host
        #: The server's own listening ports: no box reaches them unless listed by number.
        self.server_ports = frozenset(server_ports)
        #: The operator's secrets (values from the server's environment, never on disk).
        self.secrets = dict(secrets or {})
        self.net_ca_file = net_ca_file
        self.host_addresses = host_addresses()

    def check(self, options: BoxOptions) -> None:
        """allow_net within the operator's list, secrets known: before anything exists."""
        enabled = options.network is not None and options.network.mode == "enabled"
        try:
            for_box(self.secrets, options.secrets, enabled)
        except SecretError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if options.network is None or options.network.allow_net is None:
            return
        if not enabled:
            raise InvalidArgumentError(
                "network.allow_net was given with network mode 'disabled'; set mode "
                "'enabled' (allow_net narrows what a box with network may reach)"
            )
        try:
            narrowed(self.net_allow, options.network.allow_net)
        except PolicyError as exc:
            raise InvalidArgumentError(f"network.allow_net: {exc}") from None

    def policy(self, options: BoxOptions) -> NetPolicy:
        """The policy a box with these options runs under (operator's list, narrowed)."""
        asked = options.network.allow_net if options.network else None
        return NetPolicy(
            self.net_allow, None if asked is None else AllowList.parse(asked), self.host_addresses
        )

    def substitution(self, options: BoxOptions) -> Substitution:
        """The box's secrets (checked at create; a server restarted without one refuses)."""
        try:
            return Substitution(choose(self.secrets, options.secrets or []))
        except SecretError as exc:
            raise InvalidStateError(f"cannot start the box: {exc}") from None

    def host_port_refused(self, port: int, exposed: Iterable[int]) -> str | None:
        """Why the host's loopback ``port`` stays closed to every box's proxy, if it does."""
        if port in exposed:
            return (
                f"port {port} on the host is a box's exposed service (box_expose); "
                "boxes do not reach each other's services"
            )
        if port in self.server_ports and not any(
            e.kind == "host" and e.port == port for e in self.net_allow.entries
        ):
            return f"port {port} on the host is this MCP server's own"
        return None

    def details(self) -> dict[str, str]:
        """What ``runtime_info`` says about networks here."""
        named = ", ".join(f"{s.name} (for {', '.join(s.hosts)})" for s in self.secrets.values())
        return {
            "network": "none (default), or a network namespace of the box's own whose only "
            "way out is a filtering proxy on the host (HTTP(S)_PROXY, ALL_PROXY; "
            "DNS answered per policy); nothing on the host or private networks "
            f"unless listed. Widest set (--net-allow): {self.net_allow}; boxes "
            "narrow it with allow_net",
            "secrets": (named or "none configured (--secret)")
            + "; a box sees <BOXLITE_SECRET:NAME>, the server swaps the value "
            "into its HTTP(S) requests to those hosts",
            "box_expose": f"a listener on {self.expose_host} forwarded into the box",
            "ports": "box_create's ports are exposed right after create, as box_expose "
            "(which starts the box)",
        }


async def expose(
    exposed: dict[int, ExposedService], init_pid: int, port: int, bind_host: str
) -> ExposedPort:
    """The box's ``port`` reachable on ``bind_host`` (the same listener when asked again)."""
    service = exposed.get(port)
    if service is None:
        service = ExposedService(Netns(init_pid), port)
        try:
            await service.start(bind_host)
        except BaseException:
            service.close()
            raise
        exposed[port] = service
    return ExposedPort(port=port, url=service.url, host_port=service.host_port)


def status(
    network: BoxNetwork | None, exposed: Mapping[int, ExposedService]
) -> NetworkStatus | None:
    """``box_info``'s view of a running box's network (None: nothing to show)."""
    ports = [
        ExposedPort(port=p, url=s.url, host_port=s.host_port) for p, s in sorted(exposed.items())
    ]
    if network is None:
        if not ports:
            return None
        return NetworkStatus(
            policy="no network: nothing outside the box is reachable from it", exposed=ports
        )
    return NetworkStatus(
        policy=network.policy.describe(),
        proxy=f"http://127.0.0.1:{PROXY_PORT} (in the box)",
        recent_denials=[
            NetworkDenial(
                at=datetime.fromtimestamp(d.at, UTC), destination=d.destination, reason=d.reason
            )
            for d in reversed(network.denials)
        ],
        exposed=ports,
    )


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


def prepare_files(box_dir: Path, layer: Path, options: BoxOptions, lower: Path) -> NetworkFiles:
    """resolv.conf, and for a box with secrets a fresh CA and the bundle trusting it.

    ``layer`` holds the box's ``upper/`` (its disk, or ``box_dir``). The CA's key
    stays in this process; only its certificate reaches the box.
    """
    upper = layer / "upper"
    _unlink_resolv_conf(upper, lower)
    resolv = box_dir / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    files = [(str(resolv), "/etc/resolv.conf")]
    ca = None
    if options.secrets:
        ca = BoxCA(box_dir.name, box_dir)
        bundle = box_dir / "ca-bundle.pem"
        bundle.write_bytes(system_bundle().rstrip(b"\n") + b"\n" + ca.pem())
        bundle.chmod(0o644)
        files.append((str(bundle), CA_BUNDLE))
    return NetworkFiles(tuple(files), ca)


def _etc_dir(upper: Path, lower: Path) -> Path:
    """The box's own /etc in its layer, made (box root's, the image's mode) if missing."""
    etc = upper / "etc"
    if not etc.is_dir():
        etc.mkdir(parents=True)
        if (lower / "etc").is_dir():
            etc.chmod((lower / "etc").stat().st_mode & 0o7777)
        _own(etc)
    return etc


def _unlink_resolv_conf(upper: Path, lower: Path) -> None:
    """Where the image's /etc/resolv.conf is a symlink (often to a file the image lacks,
    which bubblewrap cannot bind over), put a plain file in the box's own layer."""
    own = upper / "etc" / "resolv.conf"
    effective = own if own.exists() or own.is_symlink() else lower / "etc" / "resolv.conf"
    if not effective.is_symlink():
        return
    if own.is_symlink():
        own.unlink()
    _etc_dir(upper, lower)
    own.write_text("")
    own.chmod(0o644)
    _own(own)


def _own(path: Path) -> None:
    """What the runtime adds to a box's layer belongs to box root (``idmap``): host
    root's would show as nobody in the box, and box root could not change it."""
    os.chown(path, idmap.to_host(0), idmap.to_host(0))


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
            await net.dns.serve_tcp(await net.netns.listen_tcp("127.0.0.1", 53))
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
