"""The load run (tools/replica_load) at a tiny size, so that it cannot rot: three
replicas, a few agents, one replica killed and restarted halfway; nothing lost,
nothing leaked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.external import need_haproxy, need_redis_server
from tools.replica_load import Workload, run_load

pytestmark = pytest.mark.anyio


async def test_a_tiny_load_run_with_a_killed_replica_loses_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    need_redis_server()
    need_haproxy()
    workload = Workload(agents=4, execs=3, concurrency=4, lines=50)
    result = await run_load(tmp_path, workload, replicas=3, kill=True)
    assert result.failures == []
    assert (result.execs_done, result.lost_outputs, result.leaked_boxes) == (12, 0, 0)
    assert result.halfway.is_set()  # the replica was killed mid-run
