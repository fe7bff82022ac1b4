"""MCP Tasks through the SDK's real Client: polled to a result, cancelled, owner-scoped, opt-in."""

from __future__ import annotations

from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    Implementation,
    Request,
    RequestParams,
    Result,
)
from pydantic import ConfigDict

from boxlite_mcp.server.tasks import TASKS_EXTENSION
from tests.mcp.conftest import ServerFactory, ok
from tests.mcp.test_owners import principal_from_client_name

pytestmark = pytest.mark.anyio


class TaskCreated(Result):
    """A ``tools/call`` answered with a task (the extension's claimed result shape)."""

    model_config = ConfigDict(extra="allow")

    result_type: Literal["task"] = "task"
    task_id: str
    status: str


class Answer(Result):
    """Any result, every field kept (the tasks/* answers are dicts to the test)."""

    model_config = ConfigDict(extra="allow")


class TaskIdParams(RequestParams):
    task_id: str


async def send(session: ClientSession, method: str, task_id: str) -> dict[str, Any]:
    request: Request[Any, Any] = Request(method=method, params=TaskIdParams(task_id=task_id))
    answer = await session.send_request(request, Answer)
    return answer.model_dump(by_alias=True, mode="json", exclude_none=True)


async def poll(session: ClientSession, task_id: str) -> dict[str, Any]:
    """tasks/get until the task is terminal; its last snapshot."""
    with anyio.fail_after(30):
        while True:
            task = await send(session, "tasks/get", task_id)
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            await anyio.sleep(task["pollIntervalMs"] / 1000)


async def resolve(created: TaskCreated, ctx: ClaimContext) -> CallToolResult:
    task = await poll(ctx.session, created.task_id)
    return CallToolResult.model_validate(task["result"])


class Tasks(ClientExtension):
    """The client side of the Tasks extension: declare it, resolve a task by polling."""

    identifier = TASKS_EXTENSION

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=resolve)]


def tasks_client(server: Any, name: str = "alice") -> Client:
    return Client(
        server,
        mode="auto",
        extensions=[Tasks()],
        client_info=Implementation(name=name, version="1"),
    )


async def start(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool`` and return the id of the task it became."""
    created = await client.session.call_tool(tool, arguments, allow_claimed=True)
    assert isinstance(created, TaskCreated), f"{tool} did not become a task: {created}"
    wire = created.model_dump(by_alias=True, mode="json")
    assert wire["status"] == "working" and wire["ttlMs"] > 0 and wire["pollIntervalMs"] > 0
    assert "task" not in wire and "result" not in wire, "a CreateTaskResult is flat"
    return created.task_id


async def test_a_task_is_polled_to_its_result(make_server: ServerFactory) -> None:
    async with tasks_client(make_server()) as client:
        box = await client.call_tool("box_create", {"name": "t"})  # a task, resolved by polling
        assert not box.is_error and box.structured_content is not None
        assert box.structured_content["box"]["name"] == "t"
        task_id = await start(client, "exec_run", box="t", command="sleep 0.5; echo done")
        task = await send(client.session, "tasks/get", task_id)
        assert task["status"] == "working"
        final = await poll(client.session, task_id)
        assert final["status"] == "completed"
        assert final["result"]["structuredContent"]["exit_code"] == 0
        assert "done" in final["result"]["structuredContent"]["stdout"]
        assert "io.modelcontextprotocol/related-task" not in final["result"].get("_meta", {})
        # A tool error is a completed task whose result says isError.
        failing = await start(client, "exec_run", box="nosuchbox", command="true")
        failed = await poll(client.session, failing)
        assert failed["status"] == "completed" and failed["result"]["isError"] is True
        assert "No box" in failed["result"]["content"][0]["text"]
        # A tool that is not task-eligible answers in line.
        assert (await ok(client, "box_list"))["boxes"]


async def beat(client: Client, box: str) -> str:
    read = await client.call_tool("file_read", {"box": box, "path": "/tmp/beat"})
    return "" if read.is_error else str((read.structured_content or {}).get("content", ""))


async def test_cancel_ends_the_process_in_the_box(make_server: ServerFactory) -> None:
    """The command writes a counter every 0.1 s; after tasks/cancel the counter stops."""
    async with tasks_client(make_server()) as client:
        await client.call_tool("box_create", {"name": "c"})
        loop = "i=0; while true; do i=$((i+1)); echo $i > /tmp/beat; sleep 0.1; done"
        task_id = await start(client, "exec_run", box="c", command=loop)
        assert (await send(client.session, "tasks/get", task_id))["status"] == "working"
        for _ in range(100):
            if (await beat(client, "c")).strip():
                break
            await anyio.sleep(0.1)
        first = await beat(client, "c")
        await anyio.sleep(0.5)
        assert await beat(client, "c") != first, "the command is not running"
        ack = await send(client.session, "tasks/cancel", task_id)
        assert "taskId" not in ack and "status" not in ack, "tasks/cancel answers an empty ack"
        cancelled = await send(client.session, "tasks/get", task_id)
        assert cancelled["status"] == "cancelled"
        assert "result" not in cancelled and "error" not in cancelled
        stopped = await beat(client, "c")
        await anyio.sleep(0.6)
        assert await beat(client, "c") == stopped, "the process in the box survived the cancel"
        await send(client.session, "tasks/cancel", task_id)  # idempotent on a terminal task
        assert (await send(client.session, "tasks/get", task_id))["status"] == "cancelled"


async def test_another_owner_cannot_see_a_task(make_server: ServerFactory) -> None:
    server = make_server(middleware=[principal_from_client_name])
    async with tasks_client(server, "alice") as alice, tasks_client(server, "bob") as bob:
        await alice.call_tool("box_create", {"name": "a"})
        task_id = await start(alice, "exec_run", box="a", command="sleep 30")
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            with pytest.raises(MCPError) as caught:
                await send(bob.session, method, task_id)
            assert f"No task {task_id!r}" in caught.value.error.message
        assert (await send(alice.session, "tasks/get", task_id))["status"] == "working"
        await send(alice.session, "tasks/cancel", task_id)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_without_the_extension_gets_plain_results(
    make_server: ServerFactory, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        await ok(client, "box_create", name="p")
        result = await ok(client, "exec_run", box="p", command="echo plain")
        assert "plain" in result["stdout"]
        with pytest.raises(MCPError) as caught:
            await send(client.session, "tasks/get", "anything")
        if mode == "auto":
            assert caught.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
        else:  # 2025-11-25 has tasks in the core protocol (tests/mcp/test_legacy_tasks.py)
            assert "No task 'anything'" in caught.value.error.message
