"""Ownership and lifetime: owners never see each other's boxes; sessions, TTL, persist, restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp_types import Implementation

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.errors import NotFoundError
from boxlite_mcp.runtime.types import BoxOptions
from boxlite_mcp.sessions import naming
from boxlite_mcp.sessions.registry import Registry
from boxlite_mcp.settings import Settings

from .conftest import ServerFactory, fails, ok

pytestmark = pytest.mark.anyio


async def principal_from_client_name(
    ctx: ServerRequestContext[Any, Any],
    call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
) -> HandlerResult:
    """Test middleware: authenticate each request as the client's declared name.

    It stands in for bearer auth (which the HTTP tests exercise for real) by setting
    the SDK's own auth context, the way AuthContextMiddleware does.
    """
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else "nobody"
    token = AccessToken(token="not-a-secret", client_id=name, scopes=[], subject=name)
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        return await call_next(ctx)
    finally:
        auth_context_var.reset(reset)


async def until_removed(runtime: Runtime, box_id: str) -> None:
    for _ in range(200):
        if box_id not in {info.id for info in await runtime.list()}:
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"box {box_id} was not removed")


def as_user(server: Any, name: str, mode: str) -> Client:
    return Client(server, mode=mode, client_info=Implementation(name=name, version="1"))


async def test_two_owners_are_isolated(
    make_server: ServerFactory, runtime: Runtime, mode: str
) -> None:
    server = make_server(middleware=[principal_from_client_name])
    async with as_user(server, "alice", mode) as alice, as_user(server, "bob", mode) as bob:
        a = (await ok(alice, "box_create", name="work"))["box"]
        b = (await ok(bob, "box_create", name="work"))["box"]  # names are per owner
        assert a["id"] != b["id"]
        assert [x["id"] for x in (await ok(alice, "box_list"))["boxes"]] == [a["id"]]
        assert [x["id"] for x in (await ok(bob, "box_list"))["boxes"]] == [b["id"]]
        assert (await ok(alice, "exec_run", box="work", command="echo alice > /root/who"))[
            "exit_code"
        ] == 0
        assert (await ok(bob, "exec_run", box="work", command="cat /root/who || echo none"))[
            "stdout"
        ] == "none\n"

        # Bob addressing Alice's box by id gets exactly what an unknown id gets.
        for tool, extra in [
            ("box_info", {}),
            ("exec_run", {"command": "true"}),
            ("box_remove", {}),
            ("file_read", {"path": "/root/who"}),
            ("snapshot_list", {}),
            ("box_metrics", {}),
        ]:
            # The error repeats what was asked (and nothing else differs).
            foreign = await fails(bob, tool, box=a["id"], **extra)
            unknown = await fails(bob, tool, box="f" * len(a["id"]), **extra)
            assert foreign.replace(a["id"], "<ref>") == unknown.replace("f" * len(a["id"]), "<ref>")

        # Executions are owned too.
        run = await ok(alice, "exec_run", box="work", command="echo secret")
        message = await fails(bob, "exec_read", execution_id=run["execution_id"])
        assert "No execution" in message and "secret" not in message
        with pytest.raises(Exception, match="No execution"):
            await bob.read_resource(run["output_uri"])
        with pytest.raises(Exception, match="No box"):
            await bob.read_resource(f"boxlite://boxes/{a['id']}")

        # The runtime name records the owner only as a hash.
        names = [info.name or "" for info in await runtime.list()]
        assert all(n.startswith("mcp.") and "alice" not in n and "bob" not in n for n in names)
        assert naming.runtime_name("principal:alice", "work", persist=False) in names


async def test_registry_lookups_are_by_owner(runtime: Runtime) -> None:
    registry = Registry(runtime, Settings())
    mine = await registry.create("owner-a", None, BoxOptions(name="x"), persist=False)
    assert (await registry.resolve("owner-a", "x")).id == mine.id
    assert (await registry.resolve("owner-a", mine.id)).id == mine.id
    for ref in ("x", mine.id):
        with pytest.raises(NotFoundError) as caught:
            await registry.resolve("owner-b", ref)
        assert (
            caught.value.message == f"No box with that id or name ({ref!r}) among your boxes. "
            "You have no boxes; create one with box_create."
        )
    with pytest.raises(NotFoundError):
        await registry.remove("owner-b", mine.id)
    assert await registry.owned_by("owner-b") == []
    await registry.shutdown()
    assert await runtime.list() == []


async def test_idle_boxes_are_reaped_unless_persistent_or_attended(
    make_server: ServerFactory, runtime: Runtime
) -> None:
    server = make_server(box_idle_ttl_seconds=0.5, reap_interval_seconds=0.1)
    async with Client(server) as client:
        idle = (await ok(client, "box_create", name="idle"))["box"]["id"]
        kept = (await ok(client, "box_create", name="kept", persist=True))["box"]
        assert kept["lifetime"]["expires_in_seconds"] is None
        # A command started and then left alone does not keep its box alive.
        abandoned = (await ok(client, "box_create", name="abandoned"))["box"]["id"]
        await ok(client, "exec_start", box="abandoned", command="exec sleep 30")
        # A client waiting on its command does, however long it runs.
        busy = (await ok(client, "box_create", name="busy"))["box"]["id"]
        job = await ok(client, "exec_start", box="busy", command="exec sleep 2")
        done = await ok(
            client, "exec_read", execution_id=job["execution_id"], wait_seconds=20, until_exit=True
        )
        assert done["exit_code"] == 0
        ids = {info.id for info in await runtime.list()}
        assert kept["id"] in ids and busy in ids  # persistent, and attended to
        # Removed long before its 30 s command would end (removal itself may take a while).
        await until_removed(runtime, abandoned)
        await until_removed(runtime, idle)
        assert "No box with that id or name" in await fails(client, "box_info", box="idle")
        await until_removed(runtime, busy)
        assert kept["id"] in {info.id for info in await runtime.list()}


async def test_a_box_is_not_reaped_under_a_running_exec_run(
    make_server: ServerFactory, runtime: Runtime
) -> None:
    server = make_server(box_idle_ttl_seconds=0.3, reap_interval_seconds=0.1)
    async with Client(server) as client:
        box = (await ok(client, "box_create", name="long"))["box"]["id"]
        out = await ok(client, "exec_run", box="long", command="sleep 1.5; echo survived")
        assert out["stdout"] == "survived\n"
        assert box in {info.id for info in await runtime.list()}
        await until_removed(runtime, box)


async def test_session_end_removes_its_boxes(make_server: ServerFactory, runtime: Runtime) -> None:
    server = make_server()
    async with Client(server, mode="legacy") as keeper:  # keeps the server's lifespan alive
        async with Client(server, mode="legacy") as session:
            gone = (await ok(session, "box_create", name="scratch"))["box"]["id"]
            kept = (await ok(session, "box_create", name="kept", persist=True))["box"]["id"]
            assert (
                "session ends"
                in (await ok(session, "box_info", box="scratch"))["box"]["lifetime"]["removed_when"]
            )
        ids = {info.id for info in await runtime.list()}
        assert gone not in ids and kept in ids
        # The same local owner still sees its persistent box.
        assert [b["name"] for b in (await ok(keeper, "box_list"))["boxes"]] == ["kept"]


async def test_shutdown_and_restart(
    make_server: ServerFactory, runtime: Runtime, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="scratch")
        kept = (await ok(client, "box_create", name="kept", persist=True))["box"]["id"]
        await ok(client, "exec_run", box="kept", command="echo still here > /root/note")
    assert [info.id for info in await runtime.list()] == [kept]

    # A new server over the same runtime finds the persistent box again, by name.
    async with Client(make_server(), mode=mode) as client:
        listed = await ok(client, "box_list")
        assert [(b["id"], b["name"]) for b in listed["boxes"]] == [(kept, "kept")]
        assert listed["boxes"][0]["lifetime"]["persist"] is True
        out = await ok(client, "exec_run", box="kept", command="cat /root/note")
        assert out["stdout"] == "still here\n"
        await ok(client, "box_remove", box="kept")
    assert await runtime.list() == []


async def test_other_owners_persistent_boxes_stay_hidden_after_restart(
    make_server: ServerFactory, runtime: Runtime
) -> None:
    async with as_user(
        make_server(middleware=[principal_from_client_name]), "alice", "auto"
    ) as alice:
        await ok(alice, "box_create", name="mine", persist=True)
    async with as_user(make_server(middleware=[principal_from_client_name]), "bob", "auto") as bob:
        assert (await ok(bob, "box_list"))["count"] == 0
        assert "No box with that id or name" in await fails(bob, "box_info", box="mine")
    async with as_user(
        make_server(middleware=[principal_from_client_name]), "alice", "auto"
    ) as alice:
        assert [b["name"] for b in (await ok(alice, "box_list"))["boxes"]] == ["mine"]
        await ok(alice, "box_remove", box="mine")


async def test_owners_of_a_shared_server_have_private_host_directories(
    make_server: ServerFactory, host_dir: Path
) -> None:
    server = make_server(middleware=[principal_from_client_name])
    async with as_user(server, "alice", "auto") as alice, as_user(server, "bob", "auto") as bob:
        await ok(alice, "box_create", name="a")
        await ok(alice, "file_write", box="a", path="/root/secret.txt", content="alice's")
        out = await ok(alice, "copy_out", box="a", box_path="/root/secret.txt", host_path="s.txt")
        landed = Path(out["destination"])
        assert landed.read_text() == "alice's"  # noqa: ASYNC240
        assert landed.parent.parent == host_dir / "owners"  # <root>/owners/<alice's hash>/

        await ok(bob, "box_create", name="b")
        # Bob's relative path names his own directory: Alice's file is not there.
        assert "does not exist" in await fails(
            bob, "copy_in", box="b", host_path="s.txt", box_path="/root/"
        )
        # And her directory is outside his roots, by any spelling.
        assert "outside the allowed roots" in await fails(
            bob, "copy_in", box="b", host_path=str(landed), box_path="/root/"
        )
        assert "outside the allowed roots" in await fails(
            bob, "copy_out", box="b", box_path="/etc/hostname", host_path=str(landed)
        )
        info = await ok(bob, "runtime_info")
        assert info["policy"]["allowed_host_paths"] != [str(landed.parent)]
