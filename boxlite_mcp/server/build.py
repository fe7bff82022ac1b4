"""Build the MCP server: tools, resources, prompts, instructions and the lifespan.

The MCP layer talks to a ``Runtime`` only through ``runtime.base``; which runtime
it is (bwrap, rest, local) is the caller's choice, reported by ``runtime_info``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from .. import __version__
from ..runtime.base import Runtime
from ..runtime.errors import BoxliteError
from ..sessions.state import StateStore
from ..settings import Settings
from . import completions, prompts, resources, toolsets
from .identity import remember_request
from .legacy_tasks import LegacyTasks
from .sdk import ModelTool
from .services import LifespanState, Services
from .tasks import TasksExtension, TaskStore
from .tools import boxes, commands, files, observability, python, snapshots
from .tools.declare import ToolGroup

logger = logging.getLogger(__name__)

SERVER_NAME = "boxlite-mcp"

INSTRUCTIONS = """\
boxlite-mcp gives you isolated boxes (sandboxes) to run code in, safely away from the \
user's machine.

How to work:
- Start with box_create (a name helps), then exec_run to run shell commands in it. Reuse \
one box for a task; each exec_run is a fresh shell, so files persist but `cd`/`export` \
do not: use working_dir/env or chain with &&.
- Boxes have no network unless created with network=true. Call runtime_info to see the \
runtime, its isolation, what it supports, the limits (boxes, timeouts, output caps) and \
which host directories copy_in/copy_out may use.
- exec_run streams output as progress and returns exit_code, stdout/stderr (head and tail \
of long output) and output_uri, a resource with the full output. Check exit_code and \
timed_out before trusting a result. Give long jobs a timeout_seconds.
- For servers, watchers or interactive programs use exec_start, then exec_read with a \
cursor and wait_seconds, exec_write for stdin, exec_kill to stop.
- Move small files with file_write/file_read (text or base64, size-capped); whole \
directories with copy_in/copy_out (only inside allowed host roots).
- Before a risky change: box_stop, snapshot_create, then snapshot_restore if it goes \
wrong. box_clone forks a prepared box.
- Boxes are yours alone. They are removed when your session ends, after an idle TTL, or \
when the server stops, unless created with persist=true. Remove boxes you no longer \
need with box_remove.
- Errors say what to do next; a NotFound error lists the boxes you do have.
"""


class _Lifespans:
    """Shared state across lifespan runs (SSE runs one per connection).

    The first run adopts boxes an earlier process left; the last run to end
    removes every non-persistent box, kills running executions and, when the
    server owns the runtime, closes it.
    """

    def __init__(self, services: Services, owns_runtime: bool) -> None:
        self.services = services
        self.owns_runtime = owns_runtime
        self.active = 0
        self.adopted = False

    @asynccontextmanager
    async def __call__(self, _server: MCPServer[Any]) -> AsyncIterator[LifespanState]:
        services = self.services
        self.active += 1
        if not self.adopted:
            self.adopted = True
            await services.registry.adopt_at_startup()
        async with anyio.create_task_group() as tg:
            tg.start_soon(services.registry.run_reaper)
            await tg.start(services.executions.run_sweeper, tg)
            try:
                yield LifespanState(task_group=tg)
            finally:
                self.active -= 1
                if self.active == 0:
                    with anyio.CancelScope(shield=True):
                        await self._shutdown()
                tg.cancel_scope.cancel()

    async def _shutdown(self) -> None:
        services = self.services
        await services.executions.kill_all()
        await services.python.aclose()
        await services.registry.shutdown()
        services.executions.close()
        if self.owns_runtime:
            try:
                await services.runtime.aclose()
            except BoxliteError as exc:
                logger.warning("closing the runtime: %s", exc.kind)


#: Every tool group, in the order tools/list shows them.
TOOL_GROUPS: tuple[ToolGroup, ...] = (
    boxes.tools,
    commands.tools,
    python.tools,
    files.tools,
    snapshots.tools,
    observability.tools,
)


def tool_names() -> list[str]:
    """Every tool this build registers, in tools/list order."""
    return [definition.name for group in TOOL_GROUPS for definition in group.tools]


def _tools(services: Services, names: list[str]) -> list[ModelTool]:
    wanted = set(names)
    return [
        definition.bind(services)
        for group in TOOL_GROUPS
        for definition in group.tools
        if definition.name in wanted
    ]


def _instructions(names: list[str]) -> str:
    """The instructions, plus which tools exist when the operator chose a smaller set."""
    if names == tool_names():
        return INSTRUCTIONS
    return (
        INSTRUCTIONS + f"- This server offers only these tools: {', '.join(names)}. Where the "
        "advice above names another, it is switched off here; do without it.\n"
    )


class BoxliteServer(MCPServer[Any]):
    """The MCP server, answering an unknown prompt name with invalid-params (-32602).

    The SDK raises ValueError there, which reaches the client as an internal error
    with the message hidden; a model needs to hear which prompts exist instead.
    """

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> Any:
        known = sorted(p.name for p in await self.list_prompts())
        if name not in known:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"No prompt named {name!r}. Prompts: {', '.join(known)}.",
            )
        return await super().get_prompt(name, arguments, context)


def build_server(
    runtime: Runtime,
    settings: Settings,
    *,
    runtime_reason: str = "given by the caller",
    owns_runtime: bool = False,
    state: StateStore | None = None,
    **server_options: Any,
) -> MCPServer[Any]:
    """A configured boxlite-mcp server over ``runtime``.

    ``owns_runtime``: close the runtime when the last lifespan ends. Leave it False
    when the caller closes the runtime itself (the CLI does), or when lifespans may
    run again afterwards (SSE runs one per connection).
    ``state``: the state store (None: the one ``settings.state_url`` names).
    ``server_options`` go to ``MCPServer`` (e.g. ``token_verifier``, ``auth``).
    ``settings.tools`` names a tool this build lacks: ``toolsets.ToolsetError``.
    """
    names = toolsets.select(settings.tools, tool_names())
    services = Services.build(runtime, settings, runtime_reason=runtime_reason, state=state)
    tasks = TaskStore()
    # The tasks middleware is innermost: it needs the caller's identity the others set.
    middleware = [remember_request, *server_options.pop("middleware", []), LegacyTasks(tasks)]
    server: MCPServer[Any] = BoxliteServer(
        SERVER_NAME,
        title="BoxLite sandboxes",
        version=__version__,
        instructions=_instructions(names),
        tools=list(_tools(services, names)),
        lifespan=_Lifespans(services, owns_runtime),
        middleware=middleware,
        extensions=[TasksExtension(tasks)],
        **server_options,
    )
    resources.register(server, services)
    prompts.register(server)
    completions.register(server, services)
    return server
