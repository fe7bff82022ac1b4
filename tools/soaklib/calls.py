"""Calling tools and judging what comes back: success, clear error, or crash.

The SDK turns an exception a tool did not anticipate into an ``isError`` result whose
text is exactly ``Error executing tool <name>`` (the real message stays in the server
log); a protocol-level failure is a JSON-RPC error ``Internal server error``. Either
is a crash. So is any traceback, and any secret in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from mcp import Client
from mcp_types import CallToolResult, TextContent

_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
_INTERNAL = ("Internal server error", "Internal error")
#: Internals that must never reach a model (exception and library names).
_INTERNALS = re.compile(
    r"pydantic_core|ValidationError\(|ExceptionGroup|TaskGroup|anyio\.|httpx\.|"
    r"object at 0x[0-9a-f]+|Errno \d+\] .*/site-packages/"
)


class ToolFailed(Exception):
    """A tool call that had to succeed returned isError."""


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def ok(
    client: Client, tool: str, arguments: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments or {}, **kwargs)
    if result.is_error:
        raise ToolFailed(f"{tool} failed: {text_of(result)[:500]}")
    return dict(result.structured_content or {})


def crash_reason(tool: str, message: str, secrets: Iterable[str] = ()) -> str | None:
    """Why ``message`` (a tool's answer, error or not) shows a crash, or None."""
    stripped = message.strip()
    if stripped == f"Error executing tool {tool}" or stripped.endswith(
        f"Error executing tool {tool}"
    ):
        return "unanticipated exception (message hidden by the SDK)"
    if any(marker in stripped for marker in _INTERNAL):
        return "internal error"
    # python_run answers with the traceback of the code it ran: the cell's, not ours.
    users_own = tool == "python_run" and "The cell raised" in stripped
    if _TRACEBACK.search(stripped) and not users_own:
        return "traceback in the answer"
    match = _INTERNALS.search(stripped)
    if match is not None:
        return f"internals in the answer ({match.group(0)!r})"
    for secret in secrets:
        if secret and secret in stripped:
            return "a secret in the answer"
    return None


def error_core(message: str) -> str:
    """An error message without its tool prefix: the part owners compare."""
    return re.sub(r"^Error executing tool \w+: ", "", message.strip())
