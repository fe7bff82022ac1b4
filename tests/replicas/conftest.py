"""One replica cluster (tools/replicas) per module: Redis, the BoxLite test server,
replicas with ``--state redis://`` and HAProxy, all real processes on loopback.

Starting it takes seconds, so tests of a module share it (each uses its own boxes);
``anyio_backend`` is module-scoped here so that the cluster's processes and the
tests live on one event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.external import need_haproxy, need_redis_server
from tools.replicas import Cluster


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def make_cluster(work: Path, **settings: object) -> Cluster:
    """Three replicas with these server settings (skipped without redis-server/haproxy)."""
    need_redis_server()
    need_haproxy()
    return Cluster(work, 3, settings=settings)


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with make_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running
