"""DNS-rebinding protection is on wherever the server is bound; Host/Origin allow-lists."""

from __future__ import annotations

import socket

import httpx
import pytest

from boxlite_mcp.settings import Settings
from boxlite_mcp.transport.http import default_allowed_hosts, security_settings

from .conftest import serve_settings, tiny_server

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def _post(port: int, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={**ACCEPT, **headers}
        )


def test_defaults_follow_the_bind() -> None:
    assert default_allowed_hosts("127.0.0.1", 8000) == [
        "127.0.0.1:8000",
        "localhost:8000",
        "[::1]:8000",
    ]
    assert "[fe80::1]:9" in default_allowed_hosts("fe80::1", 9)
    assert "mcp.internal:9" in default_allowed_hosts("mcp.internal", 9)
    assert f"{socket.gethostname()}:9" in default_allowed_hosts("0.0.0.0", 9)
    assert "localhost:*" in default_allowed_hosts("127.0.0.1", 0)
    assert "localhost" in default_allowed_hosts("127.0.0.1", 80)


def test_protection_is_on_for_a_wildcard_bind() -> None:
    settings = Settings(host="0.0.0.0", allowed_hosts=["mcp.example.com"])
    security = security_settings(settings, 8000)
    assert security.enable_dns_rebinding_protection
    assert "mcp.example.com" in security.allowed_hosts
    assert "127.0.0.1:8000" in security.allowed_hosts
    assert "http://mcp.example.com" in security.allowed_origins


async def test_loopback_server_refuses_a_foreign_host() -> None:
    async with serve_settings(tiny_server(), Settings(transport="streamable-http")) as port:
        ok = await _post(port)
        assert ok.status_code == 200
        assert (await _post(port, Host=f"localhost:{port}")).status_code == 200
        foreign = await _post(port, Host=f"attacker.example:{port}")
        assert foreign.status_code == 421
        wrong_port = await _post(port, Host="127.0.0.1:1")
        assert wrong_port.status_code == 421
        origin = await _post(port, Origin="http://attacker.example")
        assert origin.status_code == 403


async def test_modern_protocol_requests_are_checked_too() -> None:
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
    modern = {**ACCEPT, "MCP-Protocol-Version": "2026-07-28"}
    async with serve_settings(tiny_server(), Settings(transport="streamable-http")) as port:
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{port}/mcp"
            ok = await http.post(url, json=discover, headers=modern)
            foreign = await http.post(
                url, json=discover, headers={**modern, "Host": "attacker.example"}
            )
    assert ok.status_code != 421  # past the Host check (the body's details aside)
    assert foreign.status_code == 421


async def test_wildcard_bind_still_checks_host_and_accepts_configured_names() -> None:
    settings = Settings(
        transport="streamable-http", host="0.0.0.0", allowed_hosts=["mcp.example.com:*"]
    )
    async with serve_settings(tiny_server(), settings, bind_host="0.0.0.0") as port:
        assert (await _post(port)).status_code == 200
        assert (await _post(port, Host=f"mcp.example.com:{port}")).status_code == 200
        assert (await _post(port, Host=f"attacker.example:{port}")).status_code == 421
        assert (await _post(port, Host="attacker.example")).status_code == 421


async def test_sse_checks_host_too() -> None:
    async with serve_settings(tiny_server(), Settings(transport="sse")) as port:
        async with httpx.AsyncClient() as http:
            foreign = await http.get(
                f"http://127.0.0.1:{port}/sse", headers={"Host": "attacker.example"}
            )
        assert foreign.status_code == 421
