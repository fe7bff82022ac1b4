"""The composition root: what tools and resources share, built once per server.

``Services`` wires the session layer (registry, executions, host paths) over one
runtime with the settings; ``ToolCall`` is one request's view of them (who is
asking, their boxes). Tools take a ``ToolCall`` instead of reaching for the
registry and the request context themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio.abc
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError

from ..runtime.base import Runtime
from ..runtime.types import BoxInfo
from ..sessions.executions import Executions
from ..sessions.paths import HostPaths
from ..sessions.python import PythonLimits, PythonSessions
from ..sessions.registry import BoxEntry, Registry
from ..sessions.state import StateStore, open_state
from ..settings import Settings
from .identity import Requester, requester
from .models import BoxView
from .sdk import ToolContext, response_heard

#: Set while a tool call runs as a task (``tasks.TaskStore``): its client follows it by
#: polling the task store, not on the request's stream (answered at once with the
#: task), so that stream says nothing about whether anyone still waits for the call.
RUNNING_AS_TASK: ContextVar[bool] = ContextVar("boxlite_mcp_running_as_task", default=False)


def _heard_while_it_runs() -> bool:
    return True


@dataclass
class LifespanState:
    """What one lifespan run gives its requests: where background tasks live."""

    task_group: anyio.abc.TaskGroup


def python_limits(settings: Settings) -> PythonLimits:
    """python_run's limits, from the exec settings so one setting governs both: its
    timeout ceiling and output cap are exec_run's."""
    return PythonLimits(
        output_cap_bytes=settings.result_output_cap_bytes,
        default_timeout_seconds=min(50.0, settings.exec_default_timeout_seconds),
        max_timeout_seconds=settings.exec_max_timeout_seconds,
    )


@dataclass
class Services:
    """Everything the tools share; built once per server."""

    runtime: Runtime
    settings: Settings
    registry: Registry
    executions: Executions
    host_paths: HostPaths
    runtime_reason: str
    #: What replicas share (boxes, executions, events); in process unless --state says.
    state: StateStore
    #: Persistent Python interpreters for python_run, closed at shutdown.
    python: PythonSessions = field(default_factory=PythonSessions)

    @classmethod
    def build(
        cls,
        runtime: Runtime,
        settings: Settings,
        *,
        runtime_reason: str = "given by the caller",
        state: StateStore | None = None,
    ) -> Services:
        """The session layer over ``runtime``, configured by ``settings``, keeping its
        state in ``state`` (None: the store ``settings.state_url`` names, which the
        caller closes; the CLI opens, pings and closes it itself)."""
        if state is None:
            state = open_state(
                settings.state_url,
                max_executions_kept=settings.max_executions_kept,
                stored_output_cap_bytes=settings.stored_output_cap_bytes,
            )
        python = PythonSessions(python_limits(settings))
        registry = Registry(runtime, settings, state)
        # A removed box's interpreters go with it, whoever removed it and why.
        registry.on_removed(python.close_box)
        return cls(
            runtime=runtime,
            settings=settings,
            registry=registry,
            executions=Executions(
                state=state,
                runtime=runtime,
                max_running=settings.max_executions_kept,
                result_cap_bytes=settings.result_output_cap_bytes,
                lease_seconds=settings.exec_lease_seconds,
            ),
            host_paths=HostPaths(settings.allow_paths),
            runtime_reason=runtime_reason,
            state=state,
            python=python,
        )

    def requester(self, request: ServerRequestContext[Any, Any] | None) -> Requester:
        """Who sent ``request``; their session's end removes their session boxes."""
        return requester(request, self.registry.end_session)

    def view(self, entry: BoxEntry, info: BoxInfo) -> BoxView:
        """A box as its owner sees it, lifetime included."""
        return BoxView.of(
            entry,
            info,
            idle_ttl_seconds=self.settings.box_idle_ttl_seconds,
            expires_in_seconds=self.registry.expires_in(entry),
        )

    async def box_view(self, entry: BoxEntry) -> BoxView:
        return self.view(entry, await entry.box.info())


@dataclass
class ToolCall:
    """One tool call: the shared services, the request, and who sent it."""

    services: Services
    ctx: ToolContext
    who: Requester = field(init=False)
    #: Whether its client can still hear this call: a box it waits on stays in use
    #: only meanwhile (``Registry.in_use``). A task is heard for as long as it runs.
    heard: Callable[[], bool] = field(init=False)
    #: Runtime names of the boxes this call resolved, to show errors in the owner's names.
    boxes: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.who = self.services.requester(self.ctx.request_context)
        self.heard = _heard_while_it_runs if RUNNING_AS_TASK.get() else response_heard(self.ctx)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def registry(self) -> Registry:
        return self.services.registry

    @property
    def executions(self) -> Executions:
        return self.services.executions

    @property
    def host_paths(self) -> HostPaths:
        """The host directories this requester may use."""
        return self.services.host_paths.for_owner(self.who.owner)

    async def box(self, ref: str) -> BoxEntry:
        """The requester's box by id or name; NotFoundError lists the boxes they have."""
        entry = await self.services.registry.resolve(self.who.owner, ref)
        self.boxes.append(entry.box.name or entry.id)
        return entry

    def task_group(self) -> anyio.abc.TaskGroup:
        """Where work outliving this call runs (an execution's output pump)."""
        state = self.ctx.request_context.lifespan_context
        if not isinstance(state, LifespanState):
            raise ToolError("The server is not running its lifespan; restart it.")
        return state.task_group
