"""Completions (``completion/complete``): the caller's own box, snapshot and execution ids.

A client filling in a resource template (``boxlite://boxes/{box}``) or a prompt
argument (``box`` of ``risky_change``) asks for values starting with what was
typed; the answer is drawn from the caller's own boxes, snapshots and executions
only, so it tells nobody what another owner has. Which argument takes which kind
of id is decided by the argument's name, here and nowhere else; an argument the
referenced prompt or template does not have completes to nothing.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from ..runtime.errors import BoxliteError
from .identity import current_request
from .services import Services

#: Argument name -> the kind of id it takes.
ARGUMENT_KINDS: dict[str, str] = {
    "box": "box",
    "snapshot": "snapshot",
    "execution_id": "execution",
}
#: The most values one answer carries (the protocol's limit).
MAX_VALUES = 100

_VARIABLE = re.compile(r"\{[+#./;?&]?([A-Za-z0-9_]+)")


async def _arguments_of(
    server: MCPServer[Any], ref: PromptReference | ResourceTemplateReference
) -> set[str]:
    """The argument names the referenced prompt or template has (empty: no such thing)."""
    if isinstance(ref, PromptReference):
        for prompt in await server.list_prompts():
            if prompt.name == ref.name:
                return {argument.name for argument in prompt.arguments or []}
        return set()
    for template in await server.list_resource_templates():
        if template.uri_template == ref.uri:
            return set(_VARIABLE.findall(template.uri_template))
    return set()


async def _candidates(
    services: Services, owner: str, kind: str, context: CompletionContext | None
) -> list[str]:
    """The owner's ids of ``kind``: names before ids, newest executions first."""
    if kind == "box":
        entries = await services.registry.records(owner)
        return [e.name for e in entries if e.name] + [e.id for e in entries]
    if kind == "execution":
        return [record.id for record in reversed(await services.executions.owned_by(owner))]
    box = (context.arguments or {}).get("box") if context is not None else None
    if not box:
        return []  # a snapshot's name only means something within its box
    try:
        entry = await services.registry.resolve(owner, box)
        snapshots = await entry.box.snapshot_list()
    except BoxliteError:
        return []  # not the caller's box, or a runtime without snapshots: nothing to offer
    return [s.name for s in sorted(snapshots, key=lambda s: s.created_at)]


def register(server: MCPServer[Any], services: Services) -> None:
    """Answer ``completion/complete`` on ``server`` from the caller's own ids."""

    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        kind = ARGUMENT_KINDS.get(argument.name)
        candidates: list[str] = []
        if kind is not None and argument.name in await _arguments_of(server, ref):
            owner = services.requester(current_request()).owner
            candidates = await _candidates(services, owner, kind, context)
        matches = list(dict.fromkeys(c for c in candidates if c.startswith(argument.value)))
        return Completion(
            values=matches[:MAX_VALUES],
            total=len(matches),
            has_more=len(matches) > MAX_VALUES,
        )

    # The SDK's decorator is unannotated; the handler's own signature is the contract.
    server.completion()(complete)  # type: ignore[no-untyped-call]
