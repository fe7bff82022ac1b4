"""Any replica serves any call: three ``boxlite-mcp`` replicas sharing Redis behind
HAProxy (tools/replicas), clients of the 2026-07-28 protocol with bearer tokens.

Each test talks to the balancer and to each replica's own URL with the SDK's real
``Client`` over streamable HTTP; boxes live on the project's BoxLite test server.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client

from boxlite_mcp.sessions.state import REAPER_LEASE
from boxlite_mcp.sessions.state.redis_store import RedisState
from tests.mcp.conftest import fails, ok
from tools.replicas import Cluster

from .conftest import make_cluster

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def clients(cluster: Cluster, subject: str) -> AsyncIterator[list[Client]]:
    """The subject's clients: [balancer, replica1, replica2, replica3].

    A test's failure comes out as itself, not wrapped in the exception groups of the
    clients' task groups it passes through on its way out.
    """
    failure: Exception | None = None
    try:
        async with AsyncExitStack() as stack:
            urls = [cluster.balancer_url, *cluster.replica_urls]
            opened = [await stack.enter_async_context(cluster.client(subject, u)) for u in urls]
            try:
                yield opened
            except Exception as exc:
                failure = exc
                raise
    except BaseExceptionGroup:
        if failure is None:
            raise
        raise failure from None


async def test_a_box_made_through_one_replica_is_used_and_removed_through_the_others(
    cluster: Cluster,
) -> None:
    async with clients(cluster, "alice") as (balancer, one, two, three):
        made = await ok(one, "box_create", name="shared")
        box_id = made["box"]["id"]
        for client in (two, three, balancer):
            listed = await ok(client, "box_list")
            assert [(b["id"], b["name"]) for b in listed["boxes"]] == [(box_id, "shared")]
        ran = await ok(three, "exec_run", box="shared", command="echo made-on-one > /tmp/f")
        assert ran["exit_code"] == 0
        for client in (two, balancer, balancer, balancer):  # the balancer rotates
            ran = await ok(client, "exec_run", box=box_id, command="cat /tmp/f")
            assert ran["stdout"] == "made-on-one\n"
        await ok(two, "box_remove", box="shared")
        for client in (one, three, balancer):
            assert (await ok(client, "box_list"))["boxes"] == []
            message = await fails(client, "exec_run", box=box_id, command="true")
            assert "No box with that id or name" in message and box_id in message


async def test_two_owners_never_see_each_others_boxes_on_any_replica(cluster: Cluster) -> None:
    async with clients(cluster, "alice") as alice, clients(cluster, "bob") as bob:
        mine = (await ok(alice[1], "box_create", name="private"))["box"]["id"]
        for client in bob:
            assert (await ok(client, "box_list"))["boxes"] == []
            for ref in (mine, "private"):
                message = await fails(client, "exec_run", box=ref, command="true")
                # Exactly what a box that does not exist answers, quoting the reference.
                assert f"No box with that id or name ({ref!r}) among your boxes" in message
                assert "You have no boxes" in message
            message = await fails(client, "box_remove", box=mine)
            assert f"No box with that id or name ({mine!r})" in message
        # Bob's own box of the same name is his; alice's stays hers.
        his = (await ok(bob[2], "box_create", name="private"))["box"]["id"]
        assert his != mine
        for a, b in zip(alice, bob, strict=True):
            assert [x["id"] for x in (await ok(a, "box_list"))["boxes"]] == [mine]
            assert [x["id"] for x in (await ok(b, "box_list"))["boxes"]] == [his]
        await ok(alice[3], "box_remove", box="private")
        await ok(bob[3], "box_remove", box="private")


async def test_calls_fail_clearly_while_redis_is_down_and_work_after(cluster: Cluster) -> None:
    async with clients(cluster, "alice") as (balancer, one, two, three):
        box_id = (await ok(balancer, "box_create", name="survivor"))["box"]["id"]
        await ok(two, "exec_run", box="survivor", command="echo before > /tmp/f")
        await cluster.redis_stop()
        try:
            for client in (balancer, one, two, three):
                for tool, args in [
                    ("box_list", {}),
                    ("exec_run", {"box": "survivor", "command": "true"}),
                    ("box_create", {"name": "during"}),
                ]:
                    message = await fails(client, tool, **args)
                    assert "StateUnavailable" in message, message
                    assert "cannot be reached" in message and "Retry" in message, message
                    assert "Traceback" not in message
        finally:
            await cluster.redis_start()
        for client in (balancer, one, two, three):
            listed = await ok(client, "box_list")
            assert [(b["id"], b["name"]) for b in listed["boxes"]] == [(box_id, "survivor")]
            ran = await ok(client, "exec_run", box="survivor", command="cat /tmp/f")
            assert ran["stdout"] == "before\n"
        # Nothing half-made during the outage: the box "during" does not exist anywhere,
        # and the slot its attempt may have reserved is not counted against alice.
        made = await ok(three, "box_create", name="during")
        assert made["box"]["name"] == "during"
        await ok(one, "box_remove", box="during")
        await ok(one, "box_remove", box="survivor")
        assert (await ok(balancer, "box_list"))["boxes"] == []


_REMOVED = re.compile(r"box (\S+) removed")
_ALARMING = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


async def test_idle_boxes_are_reaped_once_across_replicas(tmp_path: Path) -> None:
    ttl = 2.0
    async with (
        make_cluster(tmp_path, box_idle_ttl_seconds=ttl, reap_interval_seconds=0.3) as cluster,
        clients(cluster, "alice") as alice,
    ):
        made = []
        for index, client in enumerate(alice):
            made.append((await ok(client, "box_create", name=f"idle-{index}"))["box"]["id"])
        kept = (await ok(alice[2], "box_create", name="kept", persist=True))["box"]["id"]
        for _ in range(100):  # the reaper's rounds, watched from outside
            if len((await ok(alice[0], "box_list"))["boxes"]) == 1:
                break
            await anyio.sleep(0.3)
        else:
            raise AssertionError("idle boxes were not reaped:\n" + cluster.logs())
        await anyio.sleep(1.0)  # more rounds: nobody may remove them again
        assert [b["id"] for b in (await ok(alice[1], "box_list"))["boxes"]] == [kept]
        assert sorted(_removed(cluster)) == sorted(made), cluster.logs()
        for replica in cluster.replicas:
            assert not _ALARMING.search(replica.log_text()), cluster.logs()

        # The reaper lease's holder dies: once its lease lapses another replica reaps.
        holder = await _reaper(cluster)
        await cluster.kill(holder)
        survivor = alice[1 + (holder + 1) % 3]
        late = (await ok(survivor, "box_create", name="late"))["box"]["id"]
        for _ in range(100):
            if len((await ok(survivor, "box_list"))["boxes"]) == 1:
                break
            await anyio.sleep(0.3)
        else:
            raise AssertionError("no replica took the reaper lease over:\n" + cluster.logs())
        assert await _reaper(cluster) != holder
        for _ in range(50):  # the record goes first, the runtime's box (and its log line) next
            if sorted(_removed(cluster)) == sorted([*made, late]):
                break
            await anyio.sleep(0.1)
        else:
            raise AssertionError("the late box was not removed once:\n" + cluster.logs())


def _removed(cluster: Cluster) -> list[str]:
    """The boxes every replica's log says it removed, one entry per log line."""
    return [m.group(1) for r in cluster.replicas for m in _REMOVED.finditer(r.log_text())]


async def _reaper(cluster: Cluster) -> int:
    """Which replica (0-based) holds the reaper lease (its holder id names its pid)."""
    store = RedisState(cluster.state_url)
    try:
        holder = await store.lease_holder(REAPER_LEASE)
    finally:
        await store.aclose()
    assert holder is not None
    pid = int(holder.split(":")[1])
    return [replica.pid for replica in cluster.replicas].index(pid)
