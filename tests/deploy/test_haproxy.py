"""deploy/haproxy.cfg, as shipped, in front of two real replicas on loopback.

The replicas are ``python -m boxlite_mcp --transport streamable-http`` processes
(bwrap runtime, each its own home); HAProxy runs the repository's config with the
addresses in its environment. Which replica answered comes from the
``x-boxlite-replica`` header the config adds.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.harness.external import need_haproxy
from tools.redislib.server import free_port
from tools.replicas.haproxy import haproxy
from tools.soaklib.server import McpHttpServer

pytestmark = pytest.mark.anyio

SESSION = "mcp-session-id"


@asynccontextmanager
async def replicas_behind_haproxy(
    tmp_path: Path, count: int = 2, transport: str = "streamable-http"
) -> AsyncIterator[tuple[str, list[McpHttpServer]]]:
    need_haproxy()
    lb_port = free_port()
    servers = [
        McpHttpServer(
            tmp_path / f"home{i}",
            tmp_path / f"replica{i}.log",
            # Clients send the balancer's Host header; each replica must accept it.
            args=["--allowed-host", f"127.0.0.1:{lb_port}", "--transport", transport],
        )
        for i in range(1, count + 1)
    ]
    async with servers[0], servers[1]:
        addresses = [s.url.split("/")[2] for s in servers]
        with haproxy(lb_port, addresses, tmp_path / "haproxy.log") as url:
            yield url if transport == "streamable-http" else url.replace("/mcp", "/sse"), servers


class Seen:
    """Each response through the balancer: (replica, session id the request carried)."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, str | None]] = []

    async def __call__(self, response: httpx2.Response) -> None:
        replica = response.headers.get("x-boxlite-replica", "?")
        self.answers.append((replica, response.request.headers.get(SESSION)))


def _client(url: str, mode: str, seen: Seen) -> Client:
    http = create_mcp_http_client()
    http.event_hooks["response"].append(seen)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def _ok(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


async def test_sessionless_requests_round_robin_and_legacy_sessions_stick(
    tmp_path: Path,
) -> None:
    async with replicas_behind_haproxy(tmp_path) as (url, _):
        # 2026-07-28: no session, so consecutive requests go to alternate replicas.
        modern = Seen()
        async with _client(url, "auto", modern) as client:
            for _ in range(4):
                info = await _ok(client, "runtime_info", {})
                assert info["you"]["owner_kind"] == "anonymous"
        replicas = [replica for replica, _ in modern.answers]
        assert set(replicas) == {"replica1", "replica2"}, replicas
        assert all(session is None for _, session in modern.answers)
        assert all(a != b for a, b in itertools.pairwise(replicas)), replicas

        # 2025-11-25: a session (and the box it creates) lives in one replica; every
        # request of the session must reach it, or the replica answers "unknown session".
        pinned: dict[str, str] = {}
        for n in range(2):
            legacy = Seen()
            async with _client(url, "legacy", legacy) as client:
                await _ok(client, "box_create", {"name": f"sticky-{n}"})
                for _ in range(3):
                    ran = await _ok(
                        client, "exec_run", {"box": f"sticky-{n}", "command": "echo hi"}
                    )
                    assert ran["stdout"] == "hi\n"
                listed = await _ok(client, "box_list", {})
                assert [b["name"] for b in listed["boxes"]] == [f"sticky-{n}"]
                await _ok(client, "box_remove", {"box": f"sticky-{n}"})
            with_session = [(r, s) for r, s in legacy.answers if s is not None]
            assert len(with_session) >= 6
            assert len({r for r, _ in with_session}) == 1, legacy.answers
            assert len({s for _, s in with_session}) == 1
            pinned[with_session[0][1] or ""] = with_session[0][0]
        log = (tmp_path / "haproxy.log").read_text(errors="replace")
        assert "POST /mcp" in log
        for session in pinned:
            assert session not in log  # the proxy does not log session ids


async def test_a_replica_that_is_gone_is_skipped(tmp_path: Path) -> None:
    async with replicas_behind_haproxy(tmp_path) as (url, servers):
        await servers[0].stop()
        seen = Seen()
        async with _client(url, "auto", seen) as client:
            for _ in range(4):
                await _ok(client, "runtime_info", {})
        assert {replica for replica, _ in seen.answers} == {"replica2"}


async def test_a_legacy_sse_connection_stays_on_its_replica(tmp_path: Path) -> None:
    # The stream (GET /sse) and its messages (POST /messages/?session_id=...) must meet
    # in one replica; the config pins them by client address.
    async with replicas_behind_haproxy(tmp_path, transport="sse") as (url, _):
        for n in range(2):
            async with Client(sse_client(url), mode="legacy") as client:
                await _ok(client, "box_create", {"name": f"sse-{n}"})
                for _ in range(3):
                    ran = await _ok(client, "exec_run", {"box": f"sse-{n}", "command": "echo hi"})
                    assert ran["stdout"] == "hi\n"
                await _ok(client, "box_remove", {"box": f"sse-{n}"})
        log = (tmp_path / "haproxy.log").read_text(errors="replace")
        assert "POST /messages/" in log  # requests are logged ...
        assert "session_id" not in log  # ... without the query that names the session
