"""Executions across replicas: any replica reads what another started, and a running
execution outlives the replica that followed it (takeover by re-attach).

Real processes on loopback (tools/replicas): Redis, the BoxLite test server, three
replicas with ``--state redis://`` and HAProxy. Replicas' execution leases are 2 s
here, so a takeover happens within about that after a SIGKILL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tools.replicas import Cluster

from .conftest import make_cluster

pytestmark = pytest.mark.anyio

LEASE_SECONDS = 2

#: Ten seconds of output on both streams, numbered so a lost or doubled line shows.
STREAMING = 'for i in $(seq 1 50); do echo "out $i"; echo "err $i" >&2; sleep 0.2; done; echo done'
WHOLE_OUT = "".join(f"out {i}\n" for i in range(1, 51)) + "done\n"
WHOLE_ERR = "".join(f"err {i}\n" for i in range(1, 51))


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    async with make_cluster(work, exec_lease_seconds=LEASE_SECONDS) as running:
        yield running


async def _call(cluster: Cluster, url: str | None, tool: str, **args: Any) -> dict[str, Any]:
    async with cluster.client("alice", url) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, (tool, result.content, cluster.logs())
    return dict(result.structured_content or {})


async def _read_to_exit(cluster: Cluster, execution_id: str, url: str | None) -> tuple[str, str]:
    """Everything an execution wrote, read by cursor until it has ended."""
    out, err, cursor = [], [], 0
    with anyio.fail_after(45):
        async with cluster.client("alice", url) as client:
            while True:
                result = await client.call_tool(
                    "exec_read",
                    {
                        "execution_id": execution_id,
                        "cursor": cursor,
                        "wait_seconds": 5,
                        "until_exit": True,
                    },
                )
                assert not result.is_error, (result.content, cluster.logs())
                read = dict(result.structured_content or {})
                out.append(read["stdout"])
                err.append(read["stderr"])
                cursor = read["next_cursor"]
                if not read["running"] and not read["has_more"]:
                    assert read["exit_code"] == 0, (read, cluster.logs())
                    return "".join(out), "".join(err)


async def test_started_on_one_read_on_another_and_the_resource_on_a_third(
    cluster: Cluster,
) -> None:
    first, second, third = cluster.replica_urls
    await _call(cluster, first, "box_create", name="x1")
    started = await _call(
        cluster,
        first,
        "exec_start",
        box="x1",
        command="echo one; echo two >&2; sleep 1; echo three",
    )
    out, err = await _read_to_exit(cluster, started["execution_id"], second)
    assert (out, err) == ("one\nthree\n", "two\n")
    async with cluster.client("alice", third) as client:
        body = (await client.read_resource(started["output_uri"])).contents[0]
    assert getattr(body, "text", None) is not None and sorted(body.text.splitlines()) == [
        "one",
        "three",
        "two",
    ]
    await _call(cluster, third, "box_remove", box="x1")


async def test_a_killed_follower_loses_no_output_and_doubles_none(cluster: Cluster) -> None:
    follower = cluster.replica_urls[0]
    await _call(cluster, follower, "box_create", name="x2")
    started = await _call(cluster, follower, "exec_start", box="x2", command=STREAMING)
    async with cluster.client("alice", follower) as client:  # some output is stored by now
        await client.call_tool(
            "exec_read", {"execution_id": started["execution_id"], "wait_seconds": 2}
        )
    await cluster.kill(0)
    try:
        out, err = await _read_to_exit(cluster, started["execution_id"], None)
    finally:
        await cluster.restart(0)
    assert out == WHOLE_OUT, cluster.logs()
    assert err == WHOLE_ERR, cluster.logs()
    took_over = [
        r for r in cluster.replicas[1:] if "follower is gone; re-attaching" in r.log_text()
    ]
    assert len(took_over) == 1, cluster.logs()
    await _call(cluster, None, "box_remove", box="x2")
