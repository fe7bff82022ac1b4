"""MCP Tasks (SEP-2663): long tool calls as tasks a client polls, for clients that ask.

The Tasks extension (``io.modelcontextprotocol/tasks``, 2026-07-28) lets a client get
a task id back at once and poll for the result, so no client-side request timeout
cuts a long build short. The installed MCP SDK ships no server side for it, so this
module is that server side, built on the SDK's public ``Extension`` API (one
``tools/call`` interceptor and the additive ``tasks/*`` methods); the wire shapes
follow the pinned conformance suite's ``tasks-*`` scenarios.

When a client declared the extension (at the handshake or in the request's
``_meta`` capabilities) on a 2026-era connection, a call of one of ``TASK_TOOLS``
returns a flat ``CreateTaskResult`` (``resultType: "task"``) at once and runs in the
server's lifespan task group. ``tasks/get`` reports the task and, once it is
terminal, inlines the tool's ``result`` (a tool error is ``completed`` with
``isError``) or the protocol ``error`` (``failed``). An ``exec_run`` task waits for
its command as long as one call may (``return_after_seconds`` defaults to the ceiling:
a task has no client time limit to beat). ``tasks/cancel`` cancels the
call, which kills the command in the box (``exec_run`` kills its process when
cancelled), and acknowledges; ``tasks/update`` acknowledges (no tool here asks for
input). A task belongs to the owner who created it; to anyone else it does not
exist. Clients without the extension see no change: the interceptor passes the
call on, and ``tasks/*`` answer "missing required client capability" (-32021).

The tasks themselves live in a ``TaskStore`` shared with ``legacy_tasks``, which
speaks the 2025-11-25 revision's dialect of the same thing.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.abc
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolRequestParams, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..runtime.errors import quote_reference
from ..settings import MAX_CALL_WAIT_SECONDS
from .identity import owner_of
from .services import RUNNING_AS_TASK, LifespanState

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
#: The ``resultType`` of a ``tools/call`` answered with a task.
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
#: How long a task is kept after it is created, and how often to poll (ms).
TASK_TTL_MS = 3_600_000
POLL_INTERVAL_MS = 500
#: Finished tasks kept per server before the oldest are forgotten.
MAX_FINISHED_TASKS = 1000

Status = Literal["working", "completed", "failed", "cancelled"]


def task_arguments(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool's arguments when it runs as a task (a copy).

    A task has no client time limit to beat, so ``exec_run`` waits for its
    command as long as one call may.
    """
    arguments = dict(arguments)
    if tool == "exec_run":
        arguments.setdefault("return_after_seconds", MAX_CALL_WAIT_SECONDS)
    return arguments


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Task:
    """One task: whose it is, where it stands, and what it ended with."""

    owner: str
    tool: str
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: Status = "working"
    status_message: str = ""
    created_at: str = field(default_factory=_now)
    last_updated_at: str = ""
    created: float = field(default_factory=time.monotonic)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status_message = f"{self.tool} is running"
        self.last_updated_at = self.created_at

    def settle(self, status: Status, message: str) -> None:
        if self.status != "working":
            return  # terminal states never change
        self.status, self.status_message, self.last_updated_at = status, message, _now()
        self.done.set()

    def wire(self) -> dict[str, Any]:
        """The task as SEP-2663 puts it on the wire (a DetailedTask once terminal)."""
        body = {**self._state(), "ttlMs": TASK_TTL_MS, "pollIntervalMs": POLL_INTERVAL_MS}
        if self.status == "completed" and self.result is not None:
            body["result"] = self.result
        if self.status == "failed" and self.error is not None:
            body["error"] = self.error
        return body

    def legacy_wire(self) -> dict[str, Any]:
        """The task as the 2025-11-25 revision puts it on the wire (``Task``)."""
        return {**self._state(), "ttl": TASK_TTL_MS, "pollInterval": POLL_INTERVAL_MS}

    def _state(self) -> dict[str, Any]:
        """What both revisions say about a task, in the same words."""
        return {
            "taskId": self.task_id,
            "status": self.status,
            "statusMessage": self.status_message,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.last_updated_at,
        }


class TaskStore:
    """The tasks of one server, both protocol dialects: created, run, found per owner.

    One store serves the 2026 extension (``TasksExtension``) and the 2025-11-25
    revision (``legacy_tasks``); the rules (who may see a task, how long it is
    kept, how cancelling ends it) live here once.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, _Task] = {}

    def start(
        self,
        ctx: ServerRequestContext[Any, Any],
        tool: str,
        call_next: CallNext,
        task_group: anyio.abc.TaskGroup,
    ) -> _Task:
        """A new task of the caller's running ``call_next(ctx)`` in ``task_group``."""
        self._forget_old()
        task = _Task(owner=owner_of(ctx)[0], tool=tool)
        self._tasks[task.task_id] = task
        task_group.start_soon(self._run, task, ctx, call_next)
        return task

    async def _run(
        self, task: _Task, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> None:
        RUNNING_AS_TASK.set(True)  # this task's own context: the call it runs sees it
        with task.scope:
            try:
                task.result = _dump(await call_next(ctx))
            except Exception as exc:  # a protocol error reaches the poller, never the task group
                logger.warning("task %s (%s): %s", task.task_id, task.tool, type(exc).__name__)
                if isinstance(exc, MCPError):
                    task.error = exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)
                else:
                    task.error = {"code": INTERNAL_ERROR, "message": f"{task.tool} failed."}
                task.settle("failed", f"{task.tool} failed")
                return
            if not task.scope.cancel_called:
                task.settle("completed", f"{task.tool} finished")
        if task.scope.cancel_called:
            task.settle("cancelled", f"{task.tool} was cancelled")

    def _forget_old(self) -> None:
        now = time.monotonic()
        for task_id, task in list(self._tasks.items()):
            if task.status != "working" and now - task.created > TASK_TTL_MS / 1000:
                del self._tasks[task_id]
        finished = [t for t, task in self._tasks.items() if task.status != "working"]
        for task_id in finished[: max(0, len(finished) - MAX_FINISHED_TASKS)]:
            del self._tasks[task_id]

    def owned(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> _Task:
        """The caller's task ``task_id``; to anyone else it does not exist."""
        task = self._tasks.get(task_id)
        if task is None or task.owner != owner_of(ctx)[0]:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"No task {quote_reference(task_id)}. A task is kept for "
                f"{TASK_TTL_MS // 60000} minutes after it starts, for its owner only; "
                "start the tool call again.",
            )
        return task

    def all_owned(self, ctx: ServerRequestContext[Any, Any]) -> list[_Task]:
        owner = owner_of(ctx)[0]
        return [task for task in self._tasks.values() if task.owner == owner]

    async def cancel(self, task: _Task) -> None:
        """End a working task (exec_run kills its process when cancelled); idempotent."""
        if task.status == "working":
            task.scope.cancel()
            with anyio.move_on_after(10):
                await task.done.wait()
            task.settle("cancelled", f"{task.tool} was cancelled")


class TaskIdParams(RequestParams):
    """``tasks/get`` and ``tasks/cancel``: which task."""

    task_id: str


class UpdateTaskParams(RequestParams):
    """``tasks/update``: input for a task waiting on it (none here ever waits)."""

    task_id: str
    input_responses: dict[str, Any] | None = None


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    try:
        require_client_extension(ctx, TASKS_EXTENSION)
    except MCPError:
        return False
    return True


def _dump(result: HandlerResult) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class TasksExtension(Extension):
    """The Tasks extension: one store of tasks per server, keyed by id, scoped by owner."""

    identifier = TASKS_EXTENSION

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskIdParams, self._get),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel),
            MethodBinding("tasks/update", UpdateTaskParams, self._update),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        lifespan = ctx.lifespan_context
        if (
            params.name not in TASK_TOOLS
            or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or not isinstance(lifespan, LifespanState)
            or not _declared(ctx)
        ):
            return await call_next(ctx)
        if isinstance(params.arguments, dict):
            params.arguments.update(task_arguments(params.name, params.arguments))
        task = self._store.start(ctx, params.name, call_next, lifespan.task_group)
        return {"resultType": TASK_RESULT_TYPE, **task.wire()}

    def _task(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> _Task:
        require_client_extension(ctx, TASKS_EXTENSION)
        return self._store.owned(ctx, task_id)

    async def _get(
        self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams
    ) -> HandlerResult:
        return self._task(ctx, params.task_id).wire()

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams
    ) -> HandlerResult:
        await self._store.cancel(self._task(ctx, params.task_id))
        return {}

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> HandlerResult:
        self._task(ctx, params.task_id)
        return {}
