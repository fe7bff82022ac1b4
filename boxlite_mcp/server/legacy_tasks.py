"""MCP Tasks as the 2025-11-25 revision has them, for clients on that protocol.

The 2025-11-25 revision put tasks in the core protocol: a server advertises
``capabilities.tasks``, marks task-capable tools with ``execution.taskSupport``, and
a client asks for a task by adding ``params.task`` to ``tools/call``; it gets a
``CreateTaskResult`` (``{"task": Task}``) at once and follows it with ``tasks/get``,
``tasks/result`` (waits, then answers the tool's own result), ``tasks/list`` and
``tasks/cancel``. The same tools as the 2026 extension (``tasks.TASK_TOOLS``) may run
as tasks, in the same per-owner store (``tasks.TaskStore``).

Why a server middleware and not the SDK's ``Extension``: the installed SDK routes
none of this at 2025-11-25 (``mcp_types.methods`` leaves ``tasks/*`` out of that
revision "deliberately"), and its per-version result sieve would reject a
``CreateTaskResult`` as an invalid ``CallToolResult``. A middleware runs before
lookup and validation, so it answers these requests itself and adds the two
advertisements to the ``initialize`` and ``tools/list`` results the SDK built.

Clients that never send ``params.task`` see no change in behaviour: their calls run
in line as before, and the advertisements are fields such clients ignore. The
SDK's own ``Client`` cannot declare the client-side ``tasks`` capability, so the
request's ``params.task`` is the opt-in (the spec asks for no client capability for
tasks the server runs). Not done: ``notifications/tasks/status`` (the SDK cannot
send it at 2025-11-25; clients poll) and ``input_required`` (no tool asks for input).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from .services import LifespanState
from .tasks import TASK_TOOLS, TaskStore, task_arguments

#: The one handshake revision that has tasks.
TASKS_REVISION = "2025-11-25"
#: What the server advertises under ``capabilities.tasks``.
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
#: ``_meta`` key tying a task's result to its task.
RELATED_TASK = "io.modelcontextprotocol/related-task"


class LegacyTasks:
    """Server middleware: the 2025-11-25 tasks dialect over a ``TaskStore``."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "initialize":
            return _advertise(await call_next(ctx))
        if ctx.protocol_version != TASKS_REVISION or ctx.session.client_params is None:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            return _mark_tools(await call_next(ctx))
        if ctx.method == "tools/call":
            return await self._call(ctx, call_next)
        handler = {
            "tasks/get": self._get,
            "tasks/result": self._result,
            "tasks/list": self._list,
            "tasks/cancel": self._cancel,
        }.get(ctx.method)
        if handler is None:
            return await call_next(ctx)
        return await handler(ctx)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params
        lifespan = ctx.lifespan_context
        if (
            not isinstance(params, Mapping)
            or params.get("task") is None
            or params.get("name") not in TASK_TOOLS
            or not isinstance(lifespan, LifespanState)
        ):
            return await call_next(ctx)  # a plain call, or a tool that always answers in line
        if not isinstance(params["task"], Mapping):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f'params.task must be an object such as {{}} or {{"ttl": 60000}}, '
                f"not {type(params['task']).__name__}.",
            )
        tool = str(params["name"])
        arguments = params.get("arguments")
        rewritten = dict(params)
        if isinstance(arguments, Mapping):
            rewritten["arguments"] = task_arguments(tool, dict(arguments))
        task = self._store.start(
            replace(ctx, params=rewritten), tool, call_next, lifespan.task_group
        )
        return {"task": task.legacy_wire()}

    async def _get(self, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return self._store.owned(ctx, _task_id(ctx)).legacy_wire()

    async def _result(self, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        """Wait for the task to end, then answer what the tool call would have."""
        task = self._store.owned(ctx, _task_id(ctx))
        await task.done.wait()
        if task.status == "completed" and task.result is not None:
            meta = {**(task.result.get("_meta") or {}), RELATED_TASK: {"taskId": task.task_id}}
            return {**task.result, "_meta": meta}
        if task.error is not None:
            raise MCPError(
                code=int(task.error.get("code", INVALID_PARAMS)),
                message=str(task.error.get("message", f"{task.tool} failed.")),
            )
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"Task {task.task_id!r} was cancelled, so it has no result; "
            "start the tool call again.",
        )

    async def _list(self, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return {"tasks": [task.legacy_wire() for task in self._store.all_owned(ctx)]}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        task = self._store.owned(ctx, _task_id(ctx))
        if task.status != "working":
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Task {task.task_id!r} already ended ({task.status}); "
                "only a working task can be cancelled.",
            )
        await self._store.cancel(task)
        return task.legacy_wire()


def _task_id(ctx: ServerRequestContext[Any, Any]) -> str:
    params = ctx.params
    task_id = params.get("taskId") if isinstance(params, Mapping) else None
    if not isinstance(task_id, str) or not task_id:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{ctx.method} needs params.taskId, the id tools/call answered with.",
        )
    return task_id


def _advertise(result: HandlerResult) -> HandlerResult:
    """Add ``capabilities.tasks`` to an ``initialize`` result that settled on 2025-11-25."""
    if isinstance(result, dict) and result.get("protocolVersion") == TASKS_REVISION:
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            result["capabilities"] = {**capabilities, "tasks": CAPABILITY}
    return result


def _mark_tools(result: HandlerResult) -> HandlerResult:
    """``execution.taskSupport: optional`` on the tools that may run as tasks."""
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        result["tools"] = [
            {**tool, "execution": {"taskSupport": "optional"}}
            if isinstance(tool, dict) and tool.get("name") in TASK_TOOLS
            else tool
            for tool in result["tools"]
        ]
    return result
