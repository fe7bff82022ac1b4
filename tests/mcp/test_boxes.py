"""Box lifecycle, clone/export/import and snapshots through the tools."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from .conftest import ServerFactory, fails, ok

pytestmark = pytest.mark.anyio


async def test_lifecycle(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        created = await ok(client, "box_create", name="dev", env={"FOO": "bar"}, working_dir="/tmp")
        box = created["box"]
        assert box["name"] == "dev" and box["status"] == "configured"
        assert box["network_enabled"] is False
        assert box["lifetime"]["persist"] is False and box["lifetime"]["idle_ttl_seconds"] == 1800
        out = await ok(client, "exec_run", box=box["id"], command='echo "$FOO $(pwd)"')
        assert out["stdout"] == "bar /tmp\n"

        listed = await ok(client, "box_list")
        assert listed["count"] == 1 and listed["boxes"][0]["status"] == "running"
        info = await ok(client, "box_info", box="dev")
        assert info["box"]["id"] == box["id"] and info["running_executions"] == []
        assert info["box"]["lifetime"]["expires_in_seconds"] <= 1800

        stopped = await ok(client, "box_stop", box="dev")
        assert stopped["box"]["status"] == "stopped"
        again = await ok(client, "box_stop", box="dev")  # idempotent
        assert again["box"]["status"] == "stopped"
        started = await ok(client, "box_start", box="dev")
        assert started["box"]["status"] == "running"

        message = await fails(client, "box_create", name="dev")
        assert "already have a box named 'dev'" in message

        removed = await ok(client, "box_remove", box="dev")
        assert removed["id"] == box["id"]
        assert (await ok(client, "box_list"))["count"] == 0
        message = await fails(client, "box_info", box="dev")
        assert "No box with that id or name" in message and "box_create" in message


async def test_create_and_start_then_unnamed_box(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        box = (await ok(client, "box_create", start=True))["box"]
        assert box["name"] is None and box["status"] == "running"
        out = await ok(client, "exec_run", box=box["id"], command="echo ok")
        assert out["stdout"] == "ok\n"


async def test_limits_per_owner(make_server: ServerFactory) -> None:
    async with Client(make_server(max_boxes_per_owner=2)) as client:
        await ok(client, "box_create", name="a")
        await ok(client, "box_create", name="b")
        message = await fails(client, "box_create", name="c")
        assert "the most one owner may have (2)" in message and "box_remove" in message
        await ok(client, "box_remove", box="a")
        await ok(client, "box_create", name="c")


async def test_limit_in_total(make_server: ServerFactory) -> None:
    async with Client(make_server(max_boxes_total=1)) as client:
        await ok(client, "box_create", name="a")
        message = await fails(client, "box_create", name="b")
        assert "limit of 1 boxes in total" in message


async def test_snapshots(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="dev")
        await ok(client, "exec_run", box="dev", command="echo v1 > /root/state")
        message = await fails(client, "snapshot_create", box="dev", name="s1")
        assert "box_stop" in message  # snapshots need a stopped box, and the error says how
        await ok(client, "box_stop", box="dev")
        snap = await ok(client, "snapshot_create", box="dev", name="s1")
        assert snap["snapshot"]["name"] == "s1"
        await ok(client, "exec_run", box="dev", command="echo v2 > /root/state")
        await ok(client, "box_stop", box="dev")
        listed = await ok(client, "snapshot_list", box="dev")
        assert [s["name"] for s in listed["snapshots"]] == ["s1"]
        await ok(client, "snapshot_restore", box="dev", name="s1")
        out = await ok(client, "exec_run", box="dev", command="cat /root/state")
        assert out["stdout"] == "v1\n"
        await ok(client, "box_stop", box="dev")
        await ok(client, "snapshot_remove", box="dev", name="s1")
        assert (await ok(client, "snapshot_list", box="dev"))["snapshots"] == []
        message = await fails(client, "snapshot_restore", box="dev", name="s1")
        assert "s1" in message


async def test_clone_export_import(make_server: ServerFactory, host_dir: Path) -> None:
    async with Client(make_server()) as client:
        await ok(client, "box_create", name="base")
        await ok(client, "exec_run", box="base", command="echo prepared > /root/mark")
        await ok(client, "box_stop", box="base")
        clone = await ok(client, "box_clone", box="base", name="fork")
        assert clone["box"]["name"] == "fork" and clone["box"]["id"] != ""
        out = await ok(client, "exec_run", box="fork", command="cat /root/mark")
        assert out["stdout"] == "prepared\n"

        exported = await ok(client, "box_export", box="base", host_path=str(host_dir))
        archive = Path(exported["archive_path"])
        assert archive == host_dir / "base.boxlite"
        assert exported["size_bytes"] == (await anyio.Path(archive).stat()).st_size > 0
        leftovers = [p async for p in anyio.Path(host_dir).iterdir() if ".partial-" in p.name]
        assert leftovers == []
        message = await fails(client, "box_export", box="base", host_path=str(archive))
        assert "overwrite=true" in message
        await ok(client, "box_export", box="base", host_path=str(archive), overwrite=True)

        imported = await ok(client, "box_import", host_path=str(archive), name="copy")
        out = await ok(client, "exec_run", box="copy", command="cat /root/mark")
        assert out["stdout"] == "prepared\n"
        assert imported["box"]["name"] == "copy"

        message = await fails(client, "box_export", box="base", host_path="/etc/x.boxlite")
        assert "outside the allowed roots" in message and str(host_dir) in message
        message = await fails(client, "box_import", host_path=str(host_dir / "missing.boxlite"))
        assert "does not exist" in message


async def test_volumes_are_confined_and_mounted(make_server: ServerFactory, host_dir: Path) -> None:
    project = host_dir / "project"
    project.mkdir()
    (project / "data.txt").write_text("mounted\n")
    async with Client(make_server()) as client:
        await ok(
            client,
            "box_create",
            name="dev",
            volumes=[{"host_path": str(project), "guest_path": "/mnt/project"}],
        )
        out = await ok(client, "exec_run", box="dev", command="cat /mnt/project/data.txt")
        assert out["stdout"] == "mounted\n"
        denied = await ok(client, "exec_run", box="dev", command="echo x > /mnt/project/new")
        assert denied["exit_code"] != 0  # read-only unless asked
        message = await fails(
            client,
            "box_create",
            name="bad",
            volumes=[{"host_path": "/etc", "guest_path": "/mnt/etc"}],
        )
        assert "outside the allowed roots" in message
        assert (await ok(client, "box_list"))["count"] == 1
