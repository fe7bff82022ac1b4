"""Bearer auth: tokens from env and file, constant-time lookup, 401s, one owner per token."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from boxlite_mcp.settings import Settings
from boxlite_mcp.transport.auth import (
    TOKENS_ENV,
    AuthConfigError,
    StaticTokenVerifier,
    load_verifier,
    parse_env_tokens,
)

from .conftest import serve_settings, tiny_server

pytestmark = pytest.mark.anyio

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


async def test_verifier_maps_tokens_to_subjects() -> None:
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"})
    alice = await verifier.verify_token(ALICE)
    bob = await verifier.verify_token(BOB)
    assert alice is not None and alice.subject == "alice" and alice.client_id == "alice"
    assert bob is not None and bob.subject == "bob"
    assert await verifier.verify_token(ALICE[:-1]) is None
    assert await verifier.verify_token(ALICE + "x") is None
    assert await verifier.verify_token("") is None
    assert ALICE not in repr(verifier)


def test_env_and_file_tokens_combine(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# owners\n\n{BOB} bob the builder\n")
    path.chmod(0o600)
    verifier = load_verifier(path, {TOKENS_ENV: f"{ALICE}:team:alice"})
    assert verifier is not None
    assert verifier.subjects == {"team:alice", "bob the builder"}


def test_no_tokens_means_no_auth() -> None:
    assert load_verifier(None, {}) is None
    assert load_verifier(None, {TOKENS_ENV: " "}) is None


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (f"{ALICE}", "no ':'"),
        (f"{ALICE}:", "no subject"),
        (":alice", "empty token"),
        ("short:alice", "shorter than 16"),
        (f"{ALICE}:alice,{ALICE}:bob", "two subjects"),
    ],
)
def test_bad_env_tokens_are_refused_without_echoing_them(raw: str, complaint: str) -> None:
    with pytest.raises(AuthConfigError) as caught:
        parse_env_tokens(raw)
    assert complaint in str(caught.value)
    assert ALICE not in str(caught.value)
    assert "short" not in str(caught.value).replace("shorter", "")


def test_bad_token_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{ALICE} alice\n{BOB}\n")
    with pytest.raises(AuthConfigError, match="line 2 needs two fields") as caught:
        load_verifier(path, {})
    assert BOB not in str(caught.value)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(AuthConfigError, match="holds no tokens"):
        load_verifier(empty, {})


def test_shared_token_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{ALICE} alice\n")
    path.chmod(0o644)
    with caplog.at_level(logging.INFO, logger="boxlite_mcp.transport.auth"):
        load_verifier(path, {})
    assert "chmod 600" in caplog.text
    assert ALICE not in caplog.text


def _client(url: str, token: str | None, mode: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_requires_a_known_token_and_tells_owners_apart(mode: str) -> None:
    settings = Settings(transport="streamable-http")
    verifier = StaticTokenVerifier({ALICE: "alice", BOB: "bob"})
    async with serve_settings(tiny_server(), settings, verifier) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient() as http:
            missing = await http.post(url, json=body, headers=headers)
            wrong = await http.post(
                url, json=body, headers={**headers, "Authorization": f"Bearer {ALICE}x"}
            )
        for response in (missing, wrong):
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert ALICE not in response.text
        async with _client(url, ALICE, mode) as alice, _client(url, BOB, mode) as bob:
            a = await alice.call_tool("whoami", {})
            b = await bob.call_tool("whoami", {})
        assert a.content[0].text == "alice"  # type: ignore[union-attr]
        assert b.content[0].text == "bob"  # type: ignore[union-attr]
