"""0.9 ports at create: the PortSpec the client sends and what the test server accepts.

Pure functions (no traffic): the live path (create with ports, then the page
through the published port) is in tests/contract/test_network.py.
"""

from __future__ import annotations

import pytest

from boxlite_mcp.runtime.errors import InvalidArgumentError, UnsupportedError
from boxlite_mcp.runtime.rest.ports import PublishedPorts, port_specs
from tools.boxlite_server.ports import parse_specs


def test_a_server_on_loopback_gets_a_loopback_bind_and_a_chosen_port() -> None:
    specs, exposed = port_specs("http://127.0.0.1:8100", [8080, 9000])
    assert [s["guest_port"] for s in specs] == [8080, 9000]
    assert all(s["host_ip"] == "127.0.0.1" and s["protocol"] == "tcp" for s in specs)
    assert all(isinstance(s["host_port"], int) and s["host_port"] > 0 for s in specs)
    assert [e.url for e in exposed] == [f"http://127.0.0.1:{s['host_port']}/" for s in specs]


def test_a_remote_server_keeps_its_default_address_and_names_its_host() -> None:
    (spec,), (exposed,) = port_specs("https://boxlite.example:8443/api", [8080])
    assert "host_ip" not in spec
    assert exposed.url == f"http://boxlite.example:{spec['host_port']}/"


def test_ipv6_loopback() -> None:
    (spec,), (exposed,) = port_specs("http://[::1]:8100", [8080])
    assert spec["host_ip"] == "::1" and exposed.url.startswith("http://[::1]:")


def test_published_ports_are_per_box() -> None:
    ports = PublishedPorts()
    _, (exposed,) = port_specs("http://127.0.0.1:1", [8080])
    ports.add("a", exposed)
    assert ports.get("a", 8080) == exposed and ports.get("b", 8080) is None
    assert ports.of("a") == [exposed]
    ports.forget("a")
    assert ports.of("a") == []


@pytest.mark.parametrize(
    ("specs", "error", "says"),
    [
        ("8080", InvalidArgumentError, "list of PortSpec"),
        ([8080], InvalidArgumentError, "ports[0] must be a PortSpec"),
        ([{"guest_port": 0}], InvalidArgumentError, "guest_port 0"),
        ([{"guest_port": 80}, {"guest_port": 80}], InvalidArgumentError, "given twice"),
        ([{"guest_port": 80, "host_port": -1}], InvalidArgumentError, "ports[0].host_port"),
        ([{"guest_port": 80, "protocol": "udp"}], UnsupportedError, "only protocol tcp"),
        ([{"guest_port": 80, "host_ip": "nope"}], InvalidArgumentError, "'nope'"),
    ],
)
def test_test_server_refuses_bad_port_specs(
    specs: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as caught:
        parse_specs(specs, "127.0.0.1")
    assert says in str(caught.value)


def test_test_server_reads_port_specs() -> None:
    assert parse_specs(
        [{"guest_port": 80}, {"guest_port": 81, "host_port": 9000}], "127.0.0.1"
    ) == [
        ("127.0.0.1", 0, 80),
        ("127.0.0.1", 9000, 81),
    ]
