"""MCP Tasks: long tool calls as tasks a client polls, for clients that ask for them.

The Tasks extension (``io.modelcontextprotocol/tasks``; the ``task`` field of
``tools/call`` in 2025-11-25) lets a client get an id back at once and poll for the
result, so no client-side request timeout cuts a long build short. The installed
MCP SDK ships the wire types but no server side, so this module is that server
side, built on the SDK's public ``Extension`` API (a ``tools/call`` interceptor and
additive ``tasks/*`` methods).

When a client declared the extension (2026 era) or sent ``task`` on the call
(2025-11-25), a call of one
of ``TASK_TOOLS`` returns a ``CreateTaskResult`` at once and runs in the server's
lifespan task group. ``tasks/get`` reports the task (with the tool's result once it
is terminal), ``tasks/result`` waits for the result, ``tasks/cancel`` cancels the
call (which kills the command in the box: ``exec_run`` kills its process when
cancelled), and ``tasks/update`` acknowledges (no tool here asks for input).
A task belongs to the owner who created it; to anyone else it does not exist.
Any other client sees no change: the interceptor passes the call straight on.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    CancelTaskRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    RequestParams,
    Task,
    TaskStatus,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .identity import owner_of
from .services import LifespanState

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
#: The ``resultType`` of a ``tools/call`` answered with a task (2026-era wire).
TASK_RESULT_TYPE = "task"
#: Tools whose calls may take long enough to be worth a task.
TASK_TOOLS = frozenset(
    {
        "exec_run",
        "box_create",
        "box_export",
        "box_import",
        "box_clone",
        "snapshot_create",
        "snapshot_restore",
        "snapshot_remove",
        "snapshot_list",
    }
)
#: How long a finished task is kept for retrieval, and how often to poll (ms).
TASK_TTL_MS = 3_600_000
POLL_INTERVAL_MS = 500
#: Finished tasks kept per server before the oldest are forgotten.
MAX_FINISHED_TASKS = 1000
TERMINAL: frozenset[TaskStatus] = frozenset({"completed", "failed", "cancelled"})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Entry:
    owner: str
    tool: str
    task: Task
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: dict[str, Any] | None = None
    finished_at: float | None = None

    def settle(self, status: TaskStatus, message: str, result: dict[str, Any] | None) -> None:
        if self.task.status in TERMINAL:
            return  # terminal states never change
        self.task = self.task.model_copy(
            update={"status": status, "status_message": message, "last_updated_at": _now()}
        )
        self.result = result
        self.finished_at = time.monotonic()
        self.done.set()


class UpdateTaskRequestParams(RequestParams):
    """``tasks/update``: input for a task waiting on it (none here ever waits)."""

    task_id: str
    input_responses: dict[str, Any] | None = None


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions) and TASKS_EXTENSION in (extensions or {})


def _dump(result: HandlerResult) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class TasksExtension(Extension):
    """The Tasks extension: one store of tasks per server, keyed by id, scoped by owner."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", GetTaskRequestParams, self._get),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, self._result),
            MethodBinding("tasks/cancel", CancelTaskRequestParams, self._cancel),
            MethodBinding("tasks/update", UpdateTaskRequestParams, self._update),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        wanted = _declared(ctx) if modern else params.task is not None
        if params.name not in TASK_TOOLS or not wanted:
            return await call_next(ctx)
        lifespan = ctx.lifespan_context
        if not isinstance(lifespan, LifespanState):
            return await call_next(ctx)  # no lifespan to run it in: answer in line
        now = _now()
        ttl = TASK_TTL_MS
        if params.task is not None and params.task.ttl is not None:
            ttl = max(1000, min(params.task.ttl, TASK_TTL_MS))
        task = Task(
            task_id=uuid.uuid4().hex,
            status="working",
            status_message=f"{params.name} is running",
            created_at=now,
            last_updated_at=now,
            ttl=ttl,
            poll_interval=POLL_INTERVAL_MS,
        )
        entry = _Entry(owner=owner_of(ctx)[0], tool=params.name, task=task)
        self._forget_old()
        self._tasks[task.task_id] = entry
        lifespan.task_group.start_soon(self._run, entry, ctx, call_next)
        created: dict[str, Any] = {
            "task": task.model_dump(by_alias=True, mode="json", exclude_none=True)
        }
        if modern:
            created["resultType"] = TASK_RESULT_TYPE
        return created

    async def _run(
        self, entry: _Entry, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> None:
        with entry.scope:
            try:
                result = _dump(await call_next(ctx))
            except Exception as exc:  # a tool error reaches the poller, never the task group
                logger.warning(
                    "task %s (%s) failed: %s", entry.task.task_id, entry.tool, type(exc).__name__
                )
                message = (
                    str(exc) if isinstance(exc, MCPError) else f"{entry.tool} failed unexpectedly."
                )
                failed = CallToolResult(content=[TextContent(text=message)], is_error=True)
                entry.settle("failed", message, _dump(failed))
                return
            failed_call = bool(result.get("isError"))
            entry.settle(
                "failed" if failed_call else "completed",
                f"{entry.tool} {'returned an error' if failed_call else 'finished'}",
                result,
            )
        if entry.scope.cancelled_caught:
            entry.settle("cancelled", f"{entry.tool} was cancelled", None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for task_id, entry in list(self._tasks.items()):
            if (
                entry.finished_at is not None
                and now - entry.finished_at > (entry.task.ttl or 0) / 1000
            ):
                del self._tasks[task_id]
        finished = [t for t, e in self._tasks.items() if e.finished_at is not None]
        for task_id in finished[: max(0, len(finished) - MAX_FINISHED_TASKS)]:
            del self._tasks[task_id]

    def _entry(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> _Entry:
        entry = self._tasks.get(task_id)
        if entry is None or entry.owner != owner_of(ctx)[0]:
            shown = task_id if len(task_id) <= 80 else task_id[:77] + "..."
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"No task {shown!r}. Tasks are kept for {TASK_TTL_MS // 60000} minutes "
                "after they finish; start the tool call again.",
            )
        return entry

    def _snapshot(self, entry: _Entry) -> dict[str, Any]:
        body = entry.task.model_dump(by_alias=True, mode="json", exclude_none=True)
        if entry.result is not None:
            body["result"] = entry.result
        return body

    async def _get(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams
    ) -> HandlerResult:
        return self._snapshot(self._entry(ctx, params.task_id))

    async def _result(
        self, ctx: ServerRequestContext[Any, Any], params: GetTaskPayloadRequestParams
    ) -> HandlerResult:
        entry = self._entry(ctx, params.task_id)
        await entry.done.wait()
        if entry.result is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Task {params.task_id!r} was cancelled; it has no result.",
            )
        related = {"io.modelcontextprotocol/related-task": {"taskId": entry.task.task_id}}
        return {**entry.result, "_meta": {**entry.result.get("_meta", {}), **related}}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: CancelTaskRequestParams
    ) -> HandlerResult:
        entry = self._entry(ctx, params.task_id)
        if entry.task.status in TERMINAL:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Task {params.task_id!r} already ended ({entry.task.status}).",
            )
        entry.scope.cancel()
        with anyio.move_on_after(10):
            await entry.done.wait()  # exec_run kills its process before it returns
        entry.settle("cancelled", f"{entry.tool} was cancelled", None)
        return self._snapshot(entry)

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskRequestParams
    ) -> HandlerResult:
        return self._snapshot(self._entry(ctx, params.task_id))
