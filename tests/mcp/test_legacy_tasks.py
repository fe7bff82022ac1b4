"""MCP Tasks for 2025-11-25 clients (``params.task`` on tools/call, ``tasks/*``).

The SDK's real in-memory ``Client`` in the handshake era (``mode="legacy"``
negotiates 2025-11-25); the task requests go through its ``send_request``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import Implementation

from boxlite_mcp.server.legacy_tasks import RELATED_TASK, TASKS_REVISION
from boxlite_mcp.server.tasks import TASK_TOOLS
from tests.mcp.conftest import ServerFactory, ok
from tests.mcp.test_owners import principal_from_client_name

pytestmark = pytest.mark.anyio


async def send(session: ClientSession, method: str, **params: Any) -> dict[str, Any]:
    """One request through the client's real connection, its answer as sent.

    Below ``send_request``: the SDK client checks every ``tools/call`` answer as a
    ``CallToolResult`` (it has no tasks at 2025-11-25), so it would refuse the
    ``CreateTaskResult`` the spec answers a task-augmented call with.
    """
    return dict(await session._dispatcher.send_raw_request(method, params, {}))


def legacy_client(server: Any, name: str = "alice") -> Client:
    return Client(server, mode="legacy", client_info=Implementation(name=name, version="1"))


async def start(client: Client, tool: str, **arguments: Any) -> str:
    """``tools/call`` with ``params.task``; the id of the task it became."""
    created = await send(
        client.session, "tools/call", name=tool, arguments=arguments, task={"ttl": 60000}
    )
    task = created["task"]
    assert task["status"] == "working" and task["pollInterval"] > 0 and task["ttl"] > 0
    assert "content" not in created, "a CreateTaskResult carries the task, not the result"
    return str(task["taskId"])


async def poll(session: ClientSession, task_id: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            task = await send(session, "tasks/get", taskId=task_id)
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            await anyio.sleep(task["pollInterval"] / 1000)


async def test_the_server_advertises_tasks_on_2025_11_25(make_server: ServerFactory) -> None:
    async with legacy_client(make_server()) as client:
        assert client.session.protocol_version == TASKS_REVISION
        tasks = client.server_capabilities.tasks
        assert tasks is not None and tasks.requests is not None
        assert tasks.requests.tools is not None and tasks.requests.tools.call is not None
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        for name, tool in listed.items():
            support = tool.execution.task_support if tool.execution else None
            assert support == ("optional" if name in TASK_TOOLS else None), name
    async with Client(make_server(), mode="auto") as modern:  # the 2026 era: unchanged
        assert all(tool.execution is None for tool in (await modern.list_tools()).tools)


async def test_a_task_is_polled_to_its_result(make_server: ServerFactory) -> None:
    async with legacy_client(make_server()) as client:
        box_task = await start(client, "box_create", name="t")
        box = await send(client.session, "tasks/result", taskId=box_task)
        assert box["structuredContent"]["box"]["name"] == "t"
        task_id = await start(client, "exec_run", box="t", command="sleep 0.5; echo done")
        assert (await send(client.session, "tasks/get", taskId=task_id))["status"] == "working"
        listed = await send(client.session, "tasks/list")
        assert {task["taskId"] for task in listed["tasks"]} == {box_task, task_id}
        final = await poll(client.session, task_id)
        assert final["status"] == "completed"
        result = await send(client.session, "tasks/result", taskId=task_id)
        assert result["structuredContent"]["exit_code"] == 0
        assert "done" in result["structuredContent"]["stdout"]
        assert result["_meta"][RELATED_TASK] == {"taskId": task_id}
        # A call without params.task, and a tool that is not task-capable, answer in line.
        assert "plain" in (await ok(client, "exec_run", box="t", command="echo plain"))["stdout"]
        inline = await send(client.session, "tools/call", name="box_list", arguments={}, task={})
        assert "task" not in inline and inline["structuredContent"]["boxes"]


async def beat(client: Client, box: str) -> str:
    read = await client.call_tool("file_read", {"box": box, "path": "/tmp/beat"})
    return "" if read.is_error else str((read.structured_content or {}).get("content", ""))


async def test_cancel_ends_the_process_in_the_box(make_server: ServerFactory) -> None:
    async with legacy_client(make_server()) as client:
        await ok(client, "box_create", name="c")
        loop = "i=0; while true; do i=$((i+1)); echo $i > /tmp/beat; sleep 0.1; done"
        task_id = await start(client, "exec_run", box="c", command=loop)
        for _ in range(100):
            if (await beat(client, "c")).strip():
                break
            await anyio.sleep(0.1)
        cancelled = await send(client.session, "tasks/cancel", taskId=task_id)
        assert cancelled["taskId"] == task_id and cancelled["status"] == "cancelled"
        stopped = await beat(client, "c")
        await anyio.sleep(0.6)
        assert await beat(client, "c") == stopped, "the process in the box survived the cancel"
        for method in ("tasks/cancel", "tasks/result"):  # terminal: a clear error each
            with pytest.raises(MCPError) as caught:
                await send(client.session, method, taskId=task_id)
            assert task_id in caught.value.error.message


async def test_another_owner_cannot_see_a_task(make_server: ServerFactory) -> None:
    server = make_server(middleware=[principal_from_client_name])
    async with legacy_client(server, "alice") as alice, legacy_client(server, "bob") as bob:
        await ok(alice, "box_create", name="a")
        task_id = await start(alice, "exec_run", box="a", command="sleep 30")
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            with pytest.raises(MCPError) as caught:
                await send(bob.session, method, taskId=task_id)
            assert f"No task {task_id!r}" in caught.value.error.message
        assert (await send(bob.session, "tasks/list"))["tasks"] == []
        assert (await send(alice.session, "tasks/get", taskId=task_id))["status"] == "working"
        await send(alice.session, "tasks/cancel", taskId=task_id)


async def test_bad_task_requests_are_clear_errors(make_server: ServerFactory) -> None:
    async with legacy_client(make_server()) as client:
        with pytest.raises(MCPError) as caught:
            await send(client.session, "tasks/get")
        assert "params.taskId" in caught.value.error.message
        with pytest.raises(MCPError) as caught:
            await send(client.session, "tools/call", name="exec_run", arguments={}, task=5)
        assert "params.task must be an object" in caught.value.error.message
        failing = await start(client, "exec_run", box="nosuchbox", command="true")
        result = await send(client.session, "tasks/result", taskId=failing)
        assert result["isError"] is True and "nosuchbox" in result["content"][0]["text"]
