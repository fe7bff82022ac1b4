"""Egress policy: which destinations a box with network may reach. Pure, no I/O.

Why it is written here rather than taken from a library: the rules are this
project's (BoxLite's ``allow_net`` syntax plus ``:PORT``, the operator's set
narrowed per box, ``host.boxlite.internal``), and the address classes that must
never be reached by default are a fixed table below rather than
``ipaddress.is_global``, whose answers for mapped and special IPv6 forms differ
between Python releases.

The model:

- An *entry* is ``*`` (the public internet), a host name, ``*.suffix`` (every
  name below ``suffix``, not ``suffix`` itself), an IP address or CIDR, or
  ``host.boxlite.internal`` (the host's own loopback); each optionally followed
  by ``:PORT`` (IPv6 in brackets: ``[2001:db8::1]:443``).
- The operator's set (``--net-allow``, default ``*``) is the widest any box gets;
  a box's ``allow_net`` narrows it. A connection is allowed only if *both*
  allow it (evaluated each time, so a box's own list can never widen anything).
- Names are matched by name, but every address a name resolves to is checked
  too: a non-public address (loopback, link-local and metadata, private, shared,
  documentation, multicast, reserved; IPv4-mapped, NAT64, 6to4 and Teredo forms
  of them) or one of the host's own addresses is reachable only through an IP or
  CIDR entry that covers it. So listing a name never opens the host or the LAN,
  and a name that resolves to 169.254.169.254 is refused.
- Host parts in a request are read the way the C resolver reads them: legacy
  IPv4 spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are IP literals,
  not names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The name under which a box reaches the host's own loopback (where listed).
HOST_ALIAS = "host.boxlite.internal"
#: What ``host.boxlite.internal`` connects to on the host.
HOST_ALIAS_ADDRESS = ipaddress.IPv4Address("127.0.0.1")
PUBLIC = "*"

#: Never reachable unless an IP/CIDR entry covers the address (IANA special-purpose).
NON_PUBLIC: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # unspecified, loopback, IPv4-compatible
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",  # Teredo, benchmarking, ORCHID ...
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class PolicyError(ValueError):
    """An allow-list entry that cannot be read; the message says what to write."""


Kind = Literal["public", "name", "wildcard", "net", "host"]


@dataclass(frozen=True)
class Entry:
    """One parsed allow-list entry."""

    kind: Kind
    text: str  # canonical spelling, shown back to people
    name: str | None = None  # name: the host name; wildcard: the suffix
    net: IPNetwork | None = None
    port: int | None = None

    def port_ok(self, port: int | None) -> bool:
        """Whether the entry allows ``port`` (None: some port, as for a DNS question)."""
        return self.port is None or port is None or self.port == port


def normalize_address(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is outside every special-purpose range in ``NON_PUBLIC``."""
    address = normalize_address(address)
    return not any(address.version == n.version and address in n for n in NON_PUBLIC)


def _net_is_public(net: IPNetwork) -> bool:
    return not any(net.version == n.version and net.overlaps(n) for n in NON_PUBLIC)


def parse_ipv4_legacy(text: str) -> ipaddress.IPv4Address | None:
    """``text`` as inet_aton reads it (1-4 parts, decimal, 0x hex or 0 octal), or None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            value = int(part[2:] or "0", 16)
        elif re.fullmatch(r"0[0-7]*", part):
            value = int(part, 8)
        elif re.fullmatch(r"[1-9][0-9]*", part):
            value = int(part)
        else:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _is_hostname(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _split_port(text: str) -> tuple[str, int | None]:
    """(host part, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise PolicyError(f"{text!r} has '[' without ']'; write IPv6 as [2001:db8::1]:443")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise PolicyError(f"{text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    if port_text is None:
        return host, None
    if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise PolicyError(f"{text!r}: port {port_text!r} must be a number from 1 to 65535")
    return host, int(port_text)


def parse_entry(raw: str) -> Entry:
    """One allow-list entry; PolicyError naming it when it cannot be read."""
    if not isinstance(raw, str):
        raise PolicyError(f"allow-list entries are strings, not {raw!r}")
    text = raw.strip().lower()
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise PolicyError(
            f"allow-list entry {raw!r} is empty or has spaces or control characters; write "
            "a host name, *.domain, an IP, a CIDR, * or host.boxlite.internal, optionally :PORT"
        )
    host, port = _split_port(text)
    suffix = "" if port is None else f":{port}"
    if host.endswith(".") and not host.endswith("*."):
        host = host[:-1]
    if host == PUBLIC:
        return Entry("public", PUBLIC + suffix, port=port)
    if host == HOST_ALIAS:
        return Entry("host", HOST_ALIAS + suffix, port=port)
    if host.startswith("*."):
        name = host[2:]
        if not _is_hostname(name):
            raise PolicyError(f"allow-list entry {raw!r}: {name!r} after '*.' is not a domain")
        return Entry("wildcard", f"*.{name}{suffix}", name=name, port=port)
    if "*" in host:
        raise PolicyError(
            f"allow-list entry {raw!r}: '*' may only stand alone or start a '*.domain' entry"
        )
    try:
        if "%" in host:
            raise ValueError("a zone index (%...) cannot be reached from a box")
        net = ipaddress.ip_network(host, strict=True)
    except ValueError as exc:
        if "/" in host or ":" in host:
            raise PolicyError(f"allow-list entry {raw!r} is not a valid IP or CIDR: {exc}") from exc
        if _is_hostname(host):
            return Entry("name", host + suffix, name=host, port=port)
        if parse_ipv4_legacy(host) is not None:
            raise PolicyError(
                f"allow-list entry {raw!r} looks like an IP address; write IPv4 addresses "
                "as four decimal numbers (e.g. 10.0.0.1)"
            ) from None
        raise PolicyError(
            f"allow-list entry {raw!r} is not a valid host name, IP or CIDR"
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
    shown = str(net) if net.num_addresses > 1 else str(net.network_address)
    if port is not None and net.version == 6:
        shown = f"[{shown}]"
    return Entry("net", shown + suffix, net=net, port=port)


def parse_entries(raw: Iterable[str]) -> tuple[Entry, ...]:
    """Several entries (duplicates dropped, order kept)."""
    seen: dict[str, Entry] = {}
    for item in raw:
        entry = parse_entry(item)
        seen.setdefault(entry.text, entry)
    return tuple(seen.values())


def covers(outer: Entry, inner: Entry) -> bool:
    """Whether everything ``inner`` allows, ``outer`` allows too."""
    if outer.port is not None and outer.port != inner.port:
        return False
    if outer.kind == "public":
        return inner.kind in ("public", "name", "wildcard") or (
            inner.kind == "net" and inner.net is not None and _net_is_public(inner.net)
        )
    if outer.kind == "host":
        return inner.kind == "host"
    if outer.kind == "name":
        return inner.kind == "name" and inner.name == outer.name
    if outer.kind == "wildcard":
        assert outer.name is not None
        tail = "." + outer.name
        return (
            inner.kind in ("name", "wildcard")
            and inner.name is not None
            and (
                inner.name.endswith(tail) or (inner.kind == "wildcard" and inner.name == outer.name)
            )
        )
    assert outer.net is not None
    return (
        inner.kind == "net"
        and inner.net is not None
        and inner.net.version == outer.net.version
        and inner.net.subnet_of(outer.net)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Target:
    """The host part of a request, read: an IP literal, a name, or the host alias."""

    kind: Literal["ip", "name", "host"]
    text: str
    address: IPAddress | None = None


def parse_target(host: str) -> Target | None:
    """A request's host (CONNECT, absolute URL, SOCKS); None when it is not one."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.endswith(".") and len(text) > 1:
        text = text[:-1]
    if not text or "%" in text:
        return None
    if text == HOST_ALIAS:
        return Target("host", text)
    if ":" in text:
        try:
            v6 = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        return Target("ip", text, normalize_address(v6))
    legacy = parse_ipv4_legacy(text)
    if legacy is not None:
        return Target("ip", text, legacy)
    if _is_hostname(text):
        return Target("name", text)
    return None


@dataclass(frozen=True)
class Verdict:
    """A decision on one destination: where to connect, or why not."""

    allowed: bool
    destination: str  # host:port as asked
    addresses: tuple[IPAddress, ...] = ()  # allowed ones, in resolver order
    reason: str = ""


Resolver = Callable[[str], Awaitable[Sequence[IPAddress]]]


@dataclass(frozen=True)
class AllowList:
    """One set of entries (the operator's, or a box's)."""

    entries: tuple[Entry, ...]

    @classmethod
    def parse(cls, raw: Iterable[str]) -> AllowList:
        return cls(parse_entries(raw))

    def __str__(self) -> str:
        return ", ".join(e.text for e in self.entries) or "(nothing)"

    def outside(self, other: AllowList) -> list[Entry]:
        """The entries of ``other`` that this list does not cover."""
        return [e for e in other.entries if not any(covers(o, e) for o in self.entries)]

    def name_matches(self, name: str, port: int | None) -> bool:
        for e in self.entries:
            if not e.port_ok(port):
                continue
            if e.kind == "public" or (e.kind == "name" and e.name == name):
                return True
            if e.kind == "wildcard" and e.name is not None and name.endswith("." + e.name):
                return True
        return False

    def has_net_entry(self) -> bool:
        return any(e.kind == "net" for e in self.entries)

    def host_alias(self, port: int | None) -> bool:
        return any(e.kind == "host" and e.port_ok(port) for e in self.entries)

    def address_ok(
        self,
        address: IPAddress,
        port: int | None,
        via_name: bool,
        host_addresses: frozenset[IPAddress],
    ) -> bool:
        """An address: covered by an IP/CIDR entry, or public and reached by a listed
        name (``via_name``) or a ``*`` entry; the host's own addresses only by IP/CIDR."""
        address = normalize_address(address)
        for e in self.entries:
            if (
                e.kind == "net"
                and e.net is not None
                and e.net.version == address.version
                and address in e.net
                and e.port_ok(port)
            ):
                return True
        if not is_public(address) or address in host_addresses:
            return False
        return via_name or any(e.kind == "public" and e.port_ok(port) for e in self.entries)


@dataclass(frozen=True)
class NetPolicy:
    """What one box may reach: the operator's list, narrowed by the box's own."""

    operator: AllowList
    box: AllowList | None = None
    #: The host's own addresses (a public one would reach the host's services).
    host_addresses: frozenset[IPAddress] = field(default_factory=frozenset)

    @property
    def lists(self) -> tuple[AllowList, ...]:
        return (self.operator,) if self.box is None else (self.operator, self.box)

    def describe(self) -> str:
        """One line for people: what the box may reach."""
        if self.box is None:
            return f"allow_net: {self.operator} (the server's --net-allow)"
        return f"allow_net: {self.box} (within the server's --net-allow: {self.operator})"

    async def decide(self, host: str, port: int, resolve: Resolver) -> Verdict:
        """Whether a connection to ``host``:``port`` may go out, and to which addresses."""
        shown = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        if not 1 <= port <= 65535:
            return Verdict(False, shown, reason=f"port {port} is not a TCP port")
        return await self._decide(host, port, shown, resolve)

    async def lookup(self, name: str, resolve: Resolver) -> Verdict:
        """A DNS question from the box: the addresses it may reach on some port."""
        return await self._decide(name, None, name, resolve)

    async def _decide(self, host: str, port: int | None, shown: str, resolve: Resolver) -> Verdict:
        target = parse_target(host)
        if target is None:
            return Verdict(False, shown, reason=f"{host!r} is not a valid host name or address")
        if target.kind == "host":
            if all(lst.host_alias(port) for lst in self.lists):
                return Verdict(True, shown, (HOST_ALIAS_ADDRESS,))
            return Verdict(False, shown, reason=f"{shown} is not listed")
        if target.kind == "ip":
            assert target.address is not None
            if all(
                lst.address_ok(target.address, port, False, self.host_addresses)
                for lst in self.lists
            ):
                return Verdict(True, shown, (target.address,))
            return Verdict(False, shown, reason=_why_address(target.address))
        named = [lst.name_matches(target.text, port) for lst in self.lists]
        if not all(via or lst.has_net_entry() for lst, via in zip(self.lists, named, strict=True)):
            return Verdict(False, shown, reason=f"{target.text} is not listed")
        try:
            addresses = list(await resolve(target.text))
        except OSError as exc:
            return Verdict(False, shown, reason=f"{target.text} does not resolve ({exc})")
        allowed = tuple(
            a
            for a in (normalize_address(a) for a in addresses)
            if all(
                lst.address_ok(a, port, via, self.host_addresses)
                for lst, via in zip(self.lists, named, strict=True)
            )
        )
        if allowed:
            return Verdict(True, shown, allowed)
        if not all(named):
            return Verdict(False, shown, reason=f"{target.text} is not listed")
        first = addresses[0] if addresses else None
        why = _why_address(normalize_address(first)) if first is not None else "no address"
        return Verdict(False, shown, reason=f"{target.text} resolves to {why}")


def _why_address(address: IPAddress) -> str:
    if not is_public(address):
        return f"{address}, a non-public address (loopback, link-local, private or reserved)"
    return f"{address}, which is not listed"


def narrowed(operator: AllowList, asked: Sequence[str]) -> AllowList:
    """A box's ``allow_net``, read and within the operator's list; PolicyError naming
    the entries that are not (nothing is created then)."""
    chosen = AllowList.parse(asked)
    outside = operator.outside(chosen)
    if outside:
        names = ", ".join(repr(e.text) for e in outside)
        raise PolicyError(
            f"entries {names} are outside what this server allows (its --net-allow: "
            f"{operator}); pass entries within it, or ask the operator to widen --net-allow"
        )
    return chosen


def for_server(operator: AllowList, asked: Sequence[str] | None) -> list[str] | None:
    """The ``allow_net`` to hand a BoxLite server (rest, local), which enforces it itself.

    The box's own list must lie within the operator's (PolicyError naming the rest);
    without one, the operator's list is sent, and ``*`` (what a BoxLite server does
    with no list: all outbound) sends none. What such a server cannot express is
    refused rather than widened: ports, and ``host.boxlite.internal``.
    """
    chosen = operator if asked is None else narrowed(operator, asked)
    if any(e.kind == "public" and e.port is None for e in chosen.entries):
        return None
    for e in chosen.entries:
        if e.kind == "host":
            raise PolicyError(
                f"{e.text}: the host's own services are served only by the "
                "bwrap runtime; a BoxLite server has its own network"
            )
        if e.port is not None:
            raise PolicyError(
                f"{e.text}: a BoxLite server's allow_net has no ports, so it "
                "would allow every port; list the entry without a port"
            )
    return [e.text for e in chosen.entries]
