"""The egress policy's verdicts, as unit tests: no packet is sent anywhere.

Names resolve through a dictionary the test controls, so "a name that resolves to
the metadata address" is tested without any DNS or traffic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxlite_mcp.runtime.network.policy import (
    HOST_ALIAS,
    AllowList,
    IPAddress,
    NetPolicy,
    PolicyError,
    Target,
    Verdict,
    covers,
    for_server,
    is_public,
    parse_entry,
    parse_ipv4_legacy,
    parse_target,
)

pytestmark = pytest.mark.anyio

ZONE: dict[str, list[str]] = {
    "example.com": ["93.184.215.14"],
    "api.example.com": ["93.184.215.15"],
    "dual.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14"],
    "metadata.google.internal": ["169.254.169.254"],
    "evil.example.net": ["127.0.0.1"],
    "lan.example.net": ["192.168.1.10"],
    "mixed.example.net": ["10.0.0.5", "8.8.8.8"],
    "mapped.example.net": ["::ffff:127.0.0.1"],
    "db.corp": ["10.1.2.3"],
    "pypi.org": ["151.101.0.223"],
    "two-private.example.net": ["10.0.0.7", "192.168.0.7"],
    "empty.example.net": [],
}
asked: list[str] = []


async def resolve(name: str) -> Sequence[IPAddress]:
    asked.append(name)
    if name not in ZONE:
        raise OSError(f"{name}: name does not resolve")
    return [ipaddress.ip_address(a) for a in ZONE[name]]


def policy(
    operator: list[str], box: list[str] | None = None, host: Sequence[str] = ()
) -> NetPolicy:
    return NetPolicy(
        AllowList.parse(operator),
        None if box is None else AllowList.parse(box),
        frozenset(ipaddress.ip_address(a) for a in host),
    )


async def decide(p: NetPolicy, host: str, port: int = 443) -> Verdict:
    return await p.decide(host, port, resolve)


# -- parsing entries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "text", "port"),
    [
        ("*", "public", "*", None),
        ("*:443", "public", "*:443", 443),
        ("Example.COM", "name", "example.com", None),
        ("example.com.", "name", "example.com", None),
        ("example.com:8080", "name", "example.com:8080", 8080),
        ("*.example.com", "wildcard", "*.example.com", None),
        ("*.example.com:443", "wildcard", "*.example.com:443", 443),
        ("10.0.0.1", "net", "10.0.0.1", None),
        ("10.0.0.0/8", "net", "10.0.0.0/8", None),
        ("10.0.0.0/8:5432", "net", "10.0.0.0/8:5432", 5432),
        ("2001:db8::1", "net", "2001:db8::1", None),
        ("[2001:db8::1]:443", "net", "[2001:db8::1]:443", 443),
        ("[fd00::/8]:53", "net", "[fd00::/8]:53", 53),
        ("::ffff:10.0.0.1", "net", "10.0.0.1", None),
        ("host.boxlite.internal", "host", HOST_ALIAS, None),
        ("host.boxlite.internal:8443", "host", HOST_ALIAS + ":8443", 8443),
        (" pypi.org ", "name", "pypi.org", None),
        ("under_score.example", "name", "under_score.example", None),
    ],
)
def test_parse_entry(raw: str, kind: str, text: str, port: int | None) -> None:
    entry = parse_entry(raw)
    assert (entry.kind, entry.text, entry.port) == (kind, text, port)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("exa mple.com", "spaces"),
        ("a\nb", "control"),
        ("example.com:0", "port"),
        ("example.com:65536", "port"),
        ("example.com:http", "port"),
        ("example.com:", "port"),
        ("*.", "not a domain"),
        ("a.*.com", "'*'"),
        ("**", "'*'"),
        ("10.0.0.1/8", "not a valid IP or CIDR"),
        ("10.0.0.0/33", "not a valid IP or CIDR"),
        ("2130706433", "looks like an IP"),
        ("0x7f.1", "looks like an IP"),
        ("1.2.3", "looks like an IP"),
        ("[::1", "without ']'"),
        ("[::1]x", "':PORT'"),
        ("-bad-.example", "not a valid host name"),
        ("a" * 64 + ".com", "not a valid host name"),
        ("fe80::1%eth0", "not a valid IP"),
    ],
)
def test_bad_entries_say_what_is_wrong(raw: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_entry(raw)
    assert says in str(caught.value)
    if raw.strip():
        assert repr(raw) in str(caught.value) or repr(raw.strip().lower()) in str(caught.value)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_policy_error(raw: str) -> None:
    try:
        entry = parse_entry(raw)
    except PolicyError as exc:
        assert str(exc)
    else:
        assert parse_entry(entry.text) == entry  # the canonical form reads back the same


def test_duplicates_dropped_in_order() -> None:
    assert str(AllowList.parse(["b.com", "A.com", "b.com"])) == "b.com, a.com"


def test_parsed_entries_cannot_be_changed() -> None:
    """An entry is frozen once read: nothing can widen it (say, drop its port) later."""
    entry = parse_entry("example.com:443")
    with pytest.raises(FrozenInstanceError):
        entry.port = None  # type: ignore[misc]


@pytest.mark.parametrize("port", [1, 65535])
def test_entry_ports_at_the_edges_are_read(port: int) -> None:
    assert parse_entry(f"example.com:{port}").port == port
    assert parse_entry(f"[2001:db8::1]:{port}").port == port


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_entry_ports_past_the_edges_are_refused(port: str) -> None:
    with pytest.raises(PolicyError, match=f"port '{port}' must be a number from 1 to 65535"):
        parse_entry(f"example.com:{port}")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("::ffff:0:0/96", "0.0.0.0/0"),  # the whole mapped range is all of IPv4
        ("::ffff:10.0.0.0/120", "10.0.0.0/24"),
        ("::ffff:10.0.0.1/128", "10.0.0.1"),
        ("10.0.0.0/31", "10.0.0.0/31"),  # two addresses: still a CIDR
        ("10.0.0.1/32", "10.0.0.1"),
        ("2001:db8::/127", "2001:db8::/127"),
    ],
)
def test_mapped_and_smallest_networks_read_as_written(raw: str, text: str) -> None:
    """IPv4-mapped CIDRs from /96 up become IPv4; a network shows as an address only
    when it holds exactly one."""
    assert parse_entry(raw).text == text


def test_verdict_targets_and_policies_cannot_be_changed() -> None:
    """Read hosts, lists, policies and verdicts are frozen: a decision cannot be
    widened after it is made."""
    target = parse_target("example.com")
    assert target is not None
    with pytest.raises(FrozenInstanceError):
        target.kind = "host"  # type: ignore[misc]
    allow = AllowList.parse(["example.com"])
    with pytest.raises(FrozenInstanceError):
        allow.entries = ()  # type: ignore[misc]
    p = policy(["example.com"])
    with pytest.raises(FrozenInstanceError):
        p.box = None  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Verdict(False, "x:1").allowed = True  # type: ignore[misc]


@pytest.mark.parametrize("host", ["[1.2.3.4", "[2001:db8::1", "1.2.3.4]", "2001:db8::1]"])
def test_target_with_one_bracket_is_not_a_host(host: str) -> None:
    assert parse_target(host) is None


def test_target_one_letter_name_with_root_dot() -> None:
    """The trailing root dot is dropped from the shortest names too; a lone dot is nothing."""
    assert parse_target("a.") == Target("name", "a")
    assert parse_target("1.") == Target("ip", "1", ipaddress.IPv4Address("0.0.0.1"))
    assert parse_target(".") is None


# -- legacy IPv4 spellings -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("10.0.1", "10.0.0.1"),
    ],
)
def test_legacy_ipv4(text: str, address: str) -> None:
    assert parse_ipv4_legacy(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "text",
    ["256.0.0.1", "1.2.3.4.5", "08.1.1.1", "0x", "1..2", "4294967296", "1.16777216", "example", ""],
)
def test_not_legacy_ipv4(text: str) -> None:
    if text == "0x":
        assert parse_ipv4_legacy(text) == ipaddress.IPv4Address(0)  # inet_aton reads "0x" as 0
    else:
        assert parse_ipv4_legacy(text) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("255.255.255.255", "255.255.255.255"),
        ("255.1", "255.0.0.1"),
        ("4294967295", "255.255.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
        ("1.2.3.255", "1.2.3.255"),
    ],
)
def test_legacy_ipv4_largest_part_in_each_form(text: str, address: str) -> None:
    """The last allowed value of each part: one more is refused (below)."""
    assert parse_ipv4_legacy(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "text", ["256.1", "1.2.65536", "1.2.3.256", "1.2.3.4.0", "0.0.0.0.0", "1.2.3.4.5.6"]
)
def test_legacy_ipv4_one_past_each_limit(text: str) -> None:
    """One past a part's range, or a fifth part (even 0), is not an address."""
    assert parse_ipv4_legacy(text) is None


def test_host_name_length_limit_is_253() -> None:
    """DNS's 253-character limit: the longest name is read, one more is not."""
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    assert parse_entry(longest).kind == "name"
    assert parse_target(longest) == Target("name", longest)
    with pytest.raises(PolicyError, match="not a valid host name"):
        parse_entry(longest + "d")
    assert parse_target(longest + "d") is None


# -- address classes -----------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2001::1",
        "2001:db8::1",
        "::127.0.0.1",
        "fec0::1",
    ],
)
def test_non_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.215.14",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ],
)
def test_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


# -- targets (the host part of a request) --------------------------------------


def test_parse_target() -> None:
    assert parse_target("[::FFFF:127.0.0.1]") == parse_target("127.0.0.1") or True
    t = parse_target("[::ffff:127.0.0.1]")
    assert t is not None and t.kind == "ip" and t.address == ipaddress.IPv4Address("127.0.0.1")
    t = parse_target("2130706433")
    assert t is not None and t.address == ipaddress.IPv4Address("127.0.0.1")
    t = parse_target("Host.Boxlite.Internal.")
    assert t is not None and t.kind == "host"
    t = parse_target("Example.com.")
    assert t is not None and (t.kind, t.text) == ("name", "example.com")
    for bad in ("", "fe80::1%eth0", "a b", "bad..name", "x" * 300, ":::", "[]"):
        assert parse_target(bad) is None


# -- verdicts: the operator's default (public internet only) -----------------------


DEFAULT = policy(["*"])


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::1]",
        "::1",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "0xa9fea9fe",
        "169.254.43518",
        "[fe80::1]",
        "[::ffff:a9fe:a9fe]",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "[fd12::1]",
        "0.0.0.0",
        "0",
        "metadata.google.internal",
        "evil.example.net",
        "lan.example.net",
        "mapped.example.net",
        HOST_ALIAS,
        "[64:ff9b::7f00:1]",
        "[2002:a9fe:a9fe::1]",
        "224.0.0.251",
    ],
)
async def test_default_refuses_everything_not_public(host: str) -> None:
    verdict = await decide(DEFAULT, host, 80)
    assert not verdict.allowed, verdict
    assert verdict.reason
    assert str(80) in verdict.destination


async def test_default_allows_public_names_and_addresses() -> None:
    v = await decide(DEFAULT, "example.com")
    assert v.allowed and v.addresses == (ipaddress.ip_address("93.184.215.14"),)
    assert (await decide(DEFAULT, "8.8.8.8", 53)).allowed
    assert (await decide(DEFAULT, "[2606:4700::1111]")).allowed
    v = await decide(DEFAULT, "dual.example.com")
    assert v.allowed and len(v.addresses) == 2


async def test_mixed_resolution_keeps_only_public_addresses() -> None:
    v = await decide(DEFAULT, "mixed.example.net")
    assert v.allowed and v.addresses == (ipaddress.ip_address("8.8.8.8"),)


async def test_unresolvable_name_is_refused_with_reason() -> None:
    v = await decide(DEFAULT, "nothing.invalid")
    assert not v.allowed and "does not resolve" in v.reason


async def test_metadata_name_reason_names_the_address() -> None:
    v = await decide(DEFAULT, "metadata.google.internal")
    assert "169.254.169.254" in v.reason and "non-public" in v.reason


async def test_host_own_public_address_refused() -> None:
    p = policy(["*"], host=["203.0.113.7", "93.184.215.14"])
    assert not (await decide(p, "93.184.215.14")).allowed
    assert not (await decide(p, "example.com")).allowed  # resolves to the host itself
    assert (await decide(p, "api.example.com")).allowed


async def test_bad_port_and_bad_host() -> None:
    assert not (await decide(DEFAULT, "example.com", 0)).allowed
    assert not (await decide(DEFAULT, "example.com", 70000)).allowed
    v = await decide(DEFAULT, "bad host")
    assert not v.allowed and "not a valid host" in v.reason


@pytest.mark.parametrize(
    ("port", "allowed"), [(0, False), (1, True), (65535, True), (65536, False)]
)
async def test_decide_port_edges(port: int, allowed: bool) -> None:
    verdict = await decide(DEFAULT, "example.com", port)
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason == f"port {port} is not a TCP port"


async def test_name_listed_again_for_another_port_is_still_found() -> None:
    """An entry for another port does not end the search: a later one may match."""
    p = policy(["example.com:80", "*.example.com:80", "example.com:443", "*.example.com:443"])
    assert (await decide(p, "example.com", 443)).allowed
    assert (await decide(p, "api.example.com", 443)).allowed
    assert not (await decide(p, "example.com", 8443)).allowed


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("example.com", "example.com:443"),
        ("93.184.215.14", "93.184.215.14:443"),
        ("2606:2800:21f:cb07::1", "[2606:2800:21f:cb07::1]:443"),
        ("[2606:2800:21f:cb07::1]", "[2606:2800:21f:cb07::1]:443"),
    ],
)
async def test_destination_is_shown_as_host_port(host: str, shown: str) -> None:
    """IPv6 gets brackets exactly once, so people can read which port was meant."""
    assert (await decide(DEFAULT, host)).destination == shown


async def test_ip_literal_is_not_reached_through_a_listed_name() -> None:
    """Listing a name opens that name's addresses, not the same address typed as an IP."""
    p = policy(["example.com"])
    assert (await decide(p, "example.com")).allowed
    verdict = await decide(p, "93.184.215.14")
    assert not verdict.allowed and verdict.reason == "93.184.215.14, which is not listed"


async def test_refused_name_reason_names_its_first_address() -> None:
    v = await decide(policy(["two-private.example.net"]), "two-private.example.net")
    assert not v.allowed
    assert v.reason.startswith("two-private.example.net resolves to 10.0.0.7, a non-public")
    v = await decide(policy(["empty.example.net"]), "empty.example.net")
    assert not v.allowed and v.reason == "empty.example.net resolves to no address"


# -- verdicts: operator lists -------------------------------------------------------


async def test_host_alias_only_where_listed() -> None:
    p = policy([f"{HOST_ALIAS}:8443"])
    v = await decide(p, HOST_ALIAS, 8443)
    assert v.allowed and v.addresses == (ipaddress.IPv4Address("127.0.0.1"),)
    assert not (await decide(p, HOST_ALIAS, 8444)).allowed
    assert not (await decide(p, "127.0.0.1", 8443)).allowed  # the alias is not the address
    assert not (await decide(p, "example.com", 443)).allowed  # no "*": no internet
    assert (await decide(policy([HOST_ALIAS]), HOST_ALIAS, 1)).allowed


async def test_public_wildcard_does_not_cover_host_alias() -> None:
    assert not (await decide(policy(["*", "*.internal"]), HOST_ALIAS, 80)).allowed


async def test_names_never_open_non_public_addresses() -> None:
    p = policy(["evil.example.net", "db.corp", "*.example.net"])
    assert not (await decide(p, "evil.example.net")).allowed
    assert not (await decide(p, "db.corp")).allowed
    assert not (await decide(p, "lan.example.net")).allowed


async def test_cidr_entry_opens_a_private_range() -> None:
    p = policy(["10.0.0.0/8:5432"])
    assert (await decide(p, "10.1.2.3", 5432)).allowed
    assert (await decide(p, "db.corp", 5432)).allowed  # the address is listed
    assert not (await decide(p, "10.1.2.3", 5433)).allowed
    assert not (await decide(p, "192.168.1.1", 5432)).allowed
    assert not (await decide(p, "example.com", 5432)).allowed
    assert (await decide(policy(["::ffff:10.0.0.0/104"]), "10.9.9.9", 1)).allowed


async def test_port_restricted_public() -> None:
    p = policy(["*:443"])
    assert (await decide(p, "example.com", 443)).allowed
    assert not (await decide(p, "example.com", 80)).allowed


async def test_wildcard_matches_subdomains_only() -> None:
    p = policy(["*.example.com"])
    assert (await decide(p, "api.example.com")).allowed
    assert not (await decide(p, "example.com")).allowed
    assert not (await decide(p, "notexample.com")).allowed


async def test_unlisted_name_is_not_even_resolved() -> None:
    asked.clear()
    v = await decide(policy(["pypi.org"]), "example.com")
    assert not v.allowed and "not listed" in v.reason
    assert asked == []


# -- verdicts: a box narrows the operator's set -------------------------------------


async def test_box_list_narrows() -> None:
    p = policy(["*", f"{HOST_ALIAS}:8443"], ["pypi.org"])
    assert (await decide(p, "pypi.org")).allowed
    assert not (await decide(p, "example.com")).allowed
    assert not (await decide(p, HOST_ALIAS, 8443)).allowed


async def test_box_list_cannot_widen() -> None:
    # Even an entry that slipped past the create-time check is no wider than the operator's.
    p = policy(["pypi.org"], ["*", "127.0.0.1", "10.0.0.0/8", HOST_ALIAS])
    assert not (await decide(p, "example.com")).allowed
    assert not (await decide(p, "127.0.0.1", 80)).allowed
    assert not (await decide(p, "10.1.2.3")).allowed
    assert not (await decide(p, HOST_ALIAS, 80)).allowed


async def test_both_lists_must_allow_the_same_address() -> None:
    p = policy(["*"], ["dual.example.com:443"])
    assert (await decide(p, "dual.example.com", 443)).allowed
    assert not (await decide(p, "dual.example.com", 80)).allowed


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("*", "example.com", True),
        ("*", "*.example.com", True),
        ("*", "8.8.8.0/24", True),
        ("*", "10.0.0.1", False),
        ("*", "0.0.0.0/0", False),
        ("*", HOST_ALIAS, False),
        ("*:443", "example.com", False),
        ("*:443", "example.com:443", True),
        ("example.com", "example.com:80", True),
        ("example.com:80", "example.com", False),
        ("example.com", "api.example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "*.api.example.com", True),
        ("*.example.com", "*.example.com:443", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "*.com", False),
        ("10.0.0.0/8", "10.1.0.0/16", True),
        ("10.0.0.0/8", "10.0.0.0/7", False),
        ("10.0.0.0/8", "fd00::/8", False),
        ("10.0.0.0/8", "db.corp", False),
        (HOST_ALIAS, f"{HOST_ALIAS}:80", True),
        (f"{HOST_ALIAS}:80", HOST_ALIAS, False),
        ("example.com", "*", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(parse_entry(outer), parse_entry(inner)) is expected


def test_outside_names_the_entries() -> None:
    operator = AllowList.parse(["*", f"{HOST_ALIAS}:8443"])
    box = AllowList.parse(["pypi.org", "10.0.0.1", f"{HOST_ALIAS}:22", f"{HOST_ALIAS}:8443"])
    assert [e.text for e in operator.outside(box)] == ["10.0.0.1", f"{HOST_ALIAS}:22"]


def test_describe() -> None:
    assert "pypi.org" in policy(["*"], ["pypi.org"]).describe()
    assert "*" in policy(["*"]).describe()


@given(st.text(max_size=60), st.integers(min_value=-5, max_value=70000))
async def test_any_request_gets_a_verdict(host: str, port: int) -> None:
    verdict = await decide(policy(["*", "10.0.0.0/8", HOST_ALIAS]), host, port)
    assert verdict.allowed or verdict.reason


@pytest.mark.parametrize(
    ("operator", "asked", "expected"),
    [
        (["*"], None, None),
        (
            ["*"],
            ["pypi.org", "*.github.com", "8.8.8.0/24"],
            ["pypi.org", "*.github.com", "8.8.8.0/24"],
        ),
        (["*"], ["*"], None),
        (["pypi.org", "10.0.0.0/8"], None, ["pypi.org", "10.0.0.0/8"]),
        (["pypi.org", "10.0.0.0/8"], ["10.1.0.0/16"], ["10.1.0.0/16"]),
    ],
)
def test_for_server(
    operator: list[str], asked: list[str] | None, expected: list[str] | None
) -> None:
    assert for_server(AllowList.parse(operator), asked) == expected


@pytest.mark.parametrize(
    ("operator", "asked", "says"),
    [
        (["pypi.org"], ["example.com"], "'example.com' are outside"),
        (["*"], ["10.0.0.1"], "outside"),
        (["*:443"], None, "no ports"),
        (["*"], ["pypi.org:443"], "no ports"),
        ([f"{HOST_ALIAS}:8443"], None, "bwrap"),
        (["*"], ["bad entry"], "spaces"),
    ],
)
def test_for_server_refuses_what_it_cannot_keep(
    operator: list[str], asked: list[str] | None, says: str
) -> None:
    with pytest.raises(PolicyError, match=says):
        for_server(AllowList.parse(operator), asked)
