"""Several ``boxlite-mcp`` replicas sharing Redis, behind HAProxy, over one BoxLite server.

What issue 12's deployment looks like, on loopback ephemeral ports, for tests and
load runs: a ``redis-server`` (tools/redislib), the project's BoxLite test server
(tools/boxlite_server on bwrap, its own process), N replicas of
``python -m boxlite_mcp --transport streamable-http --runtime rest --state redis://...``
with bearer tokens (a token's subject owns its boxes), and HAProxy running
deploy/haproxy.cfg (round robin; legacy sessions pinned by ``mcp-session-id``).

Each replica keeps its port across ``kill``/``restart`` because the balancer's
configuration names it, as it would in a deployment.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
from pathlib import Path
from types import TracebackType

import anyio
from mcp.client.client import Client, ConnectMode
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tools.benchlib.procs import rest_server
from tools.redislib.server import RedisServer, free_port
from tools.soaklib.server import McpHttpServer, settings_env

from .haproxy import MAX_REPLICAS, haproxy

#: Owners the cluster knows by default: subject -> bearer token is made per cluster.
DEFAULT_SUBJECTS = ("alice", "bob")


class Cluster:
    """``async with Cluster(work) as cluster:`` starts everything, stops it on exit."""

    def __init__(
        self,
        work: Path,
        replicas: int = 3,
        *,
        subjects: tuple[str, ...] = DEFAULT_SUBJECTS,
        settings: dict[str, object] | None = None,
    ) -> None:
        """``settings``: server settings for every replica (``box_idle_ttl_seconds=2``
        becomes ``BOXLITE_MCP_BOX_IDLE_TTL_SECONDS=2``)."""
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas: 1 to {MAX_REPLICAS} (deploy/haproxy.cfg), not {replicas}")
        self.work = work
        self.count = replicas
        #: subject -> bearer token (random per cluster: nothing guessable on the port).
        self.tokens = {subject: f"tok-{secrets.token_urlsafe(16)}" for subject in subjects}
        self.settings = dict(settings or {})
        self.api_key = secrets.token_hex(16)  # hex: never starts with "-" (an argv flag)
        self.redis = RedisServer(work / "redis")
        self.rest_url = ""
        self.balancer_url = ""
        self.replicas: list[McpHttpServer] = []
        self._stack = contextlib.AsyncExitStack()

    # -- addresses -----------------------------------------------------------
    @property
    def replica_urls(self) -> list[str]:
        """Each replica's own MCP URL (bypassing the balancer)."""
        return [replica.url for replica in self.replicas]

    @property
    def state_url(self) -> str:
        return self.redis.url

    def token(self, subject: str) -> str:
        return self.tokens[subject]

    def client(self, subject: str, url: str | None = None, mode: ConnectMode = "auto") -> Client:
        """An MCP client for ``subject`` (their bearer token) to ``url`` (the balancer)."""
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {self.token(subject)}"})
        return Client(streamable_http_client(url or self.balancer_url, http_client=http), mode=mode)

    # -- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> Cluster:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            await anyio.to_thread.run_sync(self.redis.start)
            self._stack.callback(self.redis.stop)
            rest = await self._stack.enter_async_context(
                rest_server(self.work / "rest-home", self.api_key, self.work / "rest.log")
            )
            self.rest_url = rest.url
            lb_port = free_port()
            tokens = ",".join(f"{token}:{subject}" for subject, token in self.tokens.items())
            env = {
                **settings_env(**self.settings),
                "BOXLITE_MCP_AUTH_TOKENS": tokens,
                "BOXLITE_MCP_STATE_URL": self.redis.url,
                "BOXLITE_API_KEY": self.api_key,
            }
            for index in range(1, self.count + 1):
                self.replicas.append(
                    McpHttpServer(
                        self.work / f"replica{index}",
                        self.work / f"replica{index}.log",
                        env=env,
                        # After McpHttpServer's own --runtime bwrap: the last one wins.
                        args=[
                            "--runtime",
                            "rest",
                            "--url",
                            rest.url,
                            # Clients send the balancer's Host header.
                            "--allowed-host",
                            f"127.0.0.1:{lb_port}",
                        ],
                        port=free_port(),
                    )
                )
            async with anyio.create_task_group() as group:
                for replica in self.replicas:
                    group.start_soon(replica.start)
            for replica in self.replicas:
                self._stack.push_async_callback(self._stop, replica)
            addresses = [f"127.0.0.1:{replica.port}" for replica in self.replicas]
            self.balancer_url = self._stack.enter_context(
                haproxy(lb_port, addresses, self.work / "haproxy.log")
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                for replica in self.replicas:
                    await replica.stop()
                await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()

    @staticmethod
    async def _stop(replica: McpHttpServer) -> None:
        await replica.stop()

    # -- faults --------------------------------------------------------------
    async def kill(self, index: int) -> None:
        """SIGKILL replica ``index`` (0-based): no shutdown, nothing cleaned up."""
        await self.replicas[index].stop(signal.SIGKILL)

    async def stop(self, index: int) -> None:
        """Stop replica ``index`` gracefully (SIGTERM)."""
        await self.replicas[index].stop()

    async def restart(self, index: int) -> str:
        """Start replica ``index`` again (killing it first if it runs), on its port."""
        replica = self.replicas[index]
        if replica.process is not None and replica.process.returncode is None:
            await replica.stop(signal.SIGKILL)
        return await replica.start()

    async def redis_stop(self) -> None:
        await anyio.to_thread.run_sync(self.redis.stop)

    async def redis_start(self) -> None:
        """Redis again, on its port, with the data it had (append-only file)."""
        await anyio.to_thread.run_sync(self.redis.start)

    async def redis_restart(self) -> None:
        await self.redis_stop()
        await self.redis_start()

    def logs(self) -> str:
        """Every replica's log, for a failing test's message."""
        return "\n".join(
            f"--- replica{i} ---\n{replica.log_text()[-3000:]}"
            for i, replica in enumerate(self.replicas, start=1)
        )
