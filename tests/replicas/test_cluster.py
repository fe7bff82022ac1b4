"""The replica cluster itself: every replica answers, as its token's owner, on the rest
runtime; the balancer spreads requests; a killed replica comes back on its port."""

from __future__ import annotations

from typing import Any

import pytest

from tools.replicas import Cluster

pytestmark = pytest.mark.anyio


async def _info(cluster: Cluster, subject: str, url: str | None = None) -> dict[str, Any]:
    async with cluster.client(subject, url) as client:
        result = await client.call_tool("runtime_info", {})
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


async def test_every_replica_serves_its_tokens_owners_over_rest(cluster: Cluster) -> None:
    for url in [cluster.balancer_url, *cluster.replica_urls]:
        info = await _info(cluster, "alice", url)
        assert info["runtime"]["name"] == "rest", info["runtime"]
        assert info["you"]["owner_kind"] == "principal", info["you"]


async def test_a_killed_replica_restarts_on_its_port(cluster: Cluster) -> None:
    before = cluster.replica_urls[1]
    await cluster.kill(1)
    # The balancer skips the dead replica (a refused connection is retried elsewhere).
    for _ in range(3):
        await _info(cluster, "bob")
    assert await cluster.restart(1) == before
    await _info(cluster, "bob", before)
