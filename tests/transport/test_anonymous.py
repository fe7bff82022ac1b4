"""HTTP without bearer auth: refused off loopback unless allowed; said aloud where it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from boxlite_mcp.sessions.owners import SHARED_OWNER_NOTE
from boxlite_mcp.settings import Settings
from boxlite_mcp.transport.anonymous import (
    AnonymousBindError,
    check_anonymous_bind,
    is_loopback_host,
)
from tools.soaklib.server import McpHttpServer

TOKEN = "replica-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("192.168.1.2", False),
        ("fe80::1", False),
        ("mcp.example.com", False),  # a name is not looked up: it counts as exposed
        ("localhost.example.com", False),
    ],
)
def test_which_binds_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_non_loopback_without_auth_is_refused_and_says_how_to_fix(transport: str) -> None:
    settings = Settings(transport=transport, host="0.0.0.0")
    with pytest.raises(AnonymousBindError) as refused:
        check_anonymous_bind(settings, authenticated=False)
    message = str(refused.value)
    assert f"refusing to serve {transport} on --host 0.0.0.0 without bearer auth" in message
    for remedy in (
        "BOXLITE_MCP_AUTH_TOKENS",
        "--auth-tokens-file",
        "--host 127.0.0.1",
        "--allow-anonymous",
        "BOXLITE_MCP_ALLOW_ANONYMOUS=1",
    ):
        assert remedy in message


@pytest.mark.parametrize(
    ("settings", "authenticated"),
    [
        (Settings(transport="streamable-http", host="127.0.0.1"), False),
        (Settings(transport="streamable-http", host="0.0.0.0"), True),
        (Settings(transport="streamable-http", host="0.0.0.0", allow_anonymous=True), False),
        (Settings(transport="stdio", host="0.0.0.0"), False),
    ],
    ids=["loopback", "tokens", "allowed", "stdio"],
)
def test_these_start(settings: Settings, authenticated: bool) -> None:
    check_anonymous_bind(settings, authenticated=authenticated)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOXLITE")}
    return subprocess.run(
        [sys.executable, "-m", "boxlite_mcp", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_the_command_refuses_an_exposed_anonymous_bind(host: str, tmp_path: Path) -> None:
    done = _run(
        "--transport",
        "streamable-http",
        "--host",
        host,
        "--port",
        "0",
        "--runtime",
        "bwrap",
        "--home",
        str(tmp_path),
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"boxlite-mcp: error: refusing to serve streamable-http on "
        f"--host {host} without bearer auth"
    )
    assert "--allow-anonymous" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_bad_allow_anonymous_value_names_the_variable(tmp_path: Path) -> None:
    done = _run(
        "--transport",
        "streamable-http",
        "--home",
        str(tmp_path),
        env={"BOXLITE_MCP_ALLOW_ANONYMOUS": "perhaps"},
    )
    assert done.returncode == 2
    assert "--allow-anonymous / BOXLITE_MCP_ALLOW_ANONYMOUS" in done.stderr


async def _runtime_info(url: str, token: str | None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = create_mcp_http_client(headers=headers)
    async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
        result = await client.call_tool("runtime_info", {})
        assert not result.is_error
        return dict(result.structured_content or {})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0", "--allow-anonymous"], {}),
        (["--host", "0.0.0.0"], {"BOXLITE_MCP_ALLOW_ANONYMOUS": "1"}),
        ([], {}),  # loopback: allowed without asking, but still said
    ],
    ids=["flag", "env", "loopback"],
)
async def test_anonymous_server_says_clients_share_one_owner(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    async with McpHttpServer(tmp_path / "home", tmp_path / "log", args=args, env=env) as server:
        info = await _runtime_info(server.url, None)
        log = server.log_text()
    you = info["you"]
    assert isinstance(you, dict)
    assert you["owner_kind"] == "anonymous"
    assert you["note"] == SHARED_OWNER_NOTE
    assert SHARED_OWNER_NOTE in log
    assert "the same owner 'anonymous'" in SHARED_OWNER_NOTE


@pytest.mark.anyio
async def test_server_with_tokens_starts_exposed_and_says_nothing_of_sharing(
    tmp_path: Path,
) -> None:
    env = {"BOXLITE_MCP_AUTH_TOKENS": f"{TOKEN}:alice"}
    async with McpHttpServer(
        tmp_path / "home", tmp_path / "log", args=["--host", "0.0.0.0"], env=env
    ) as server:
        info = await _runtime_info(server.url, TOKEN)
        log = server.log_text()
    you = info["you"]
    assert isinstance(you, dict)
    assert you["owner_kind"] == "principal"
    assert you.get("note") is None
    assert SHARED_OWNER_NOTE not in log
    assert TOKEN not in log
