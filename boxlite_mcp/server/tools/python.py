"""The Python session tools: python_run and python_reset.

A persistent interpreter per (box, session) lives in the session layer
(``sessions.python``); this module only turns its results into MCP results: a
short summary as text, the structured ``PythonRunResult``, pictures as image
content (SVG, being text, as text), and the cell's output as progress
notifications while it runs, through the same coalescer exec_run uses.
"""

from __future__ import annotations

import math
from typing import Annotated

import anyio
from mcp_types import CallToolResult, ContentBlock, TextContent
from pydantic import Field

from ...runtime.types import OutputChunk
from ...sessions.progress import Coalescer, send_note
from ...sessions.python import DEFAULT_SESSION, PythonResetResult, PythonRunResult
from ..models import BoxRef, ToolInput
from ..pictures import RASTER, image_content
from ..services import ToolCall
from .declare import ToolGroup

tools = ToolGroup()

SessionName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Which interpreter in the box: sessions are independent (default 'default').",
    ),
]


class PythonRunInput(ToolInput):
    box: BoxRef
    code: str = Field(
        min_length=1,
        description="Python source to run as one cell; the value of a last expression is returned.",
    )
    session: SessionName = DEFAULT_SESSION
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Interrupt the cell after this long (default and maximum in runtime_info).",
    )


class PythonResetInput(ToolInput):
    box: BoxRef
    session: SessionName = DEFAULT_SESSION


async def _progress(call: ToolCall, chunks: anyio.abc.ObjectReceiveStream[OutputChunk]) -> None:
    """Send the cell's output as progress notifications, coalesced as exec_run does."""
    settings, ctx = call.settings, call.ctx
    coalescer = Coalescer(settings.progress_chunk_bytes, settings.progress_interval_seconds)
    ended = False
    while not ended:
        wait = coalescer.due_in(anyio.current_time())
        if wait == 0:
            await send_note(coalescer, ctx.report_progress)
            continue
        with anyio.move_on_after(math.inf if wait is None else wait):
            try:
                chunk = await chunks.receive()
            except anyio.EndOfStream:
                ended = True
            else:
                coalescer.add(chunk.stream, chunk.data)
    await send_note(coalescer, ctx.report_progress, final=True)


def _summary(result: PythonRunResult) -> str:
    """What a model reads first: how the cell ended, then its output, once."""
    if result.session_lost:
        head = "The Python session was lost; its state is gone."
    elif result.timed_out:
        head = "The cell timed out and was interrupted."
    elif result.error is not None:
        head = f"The cell raised {result.error.type}: {result.error.message}"
    else:
        head = f"Ran cell {result.execution_count} in session {result.session!r}."
    parts = [head]
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.error is not None and result.error.traceback:
        parts.append(result.error.traceback.rstrip("\n"))
    if result.result is not None:
        parts.append(f"=> {result.result}")
    parts.extend(result.notes)
    return "\n".join(parts)


def _content(result: PythonRunResult) -> list[ContentBlock]:
    blocks: list[ContentBlock] = [TextContent(type="text", text=_summary(result))]
    for image in result.images:
        if image.mime_type in RASTER:
            blocks.append(image_content(image.data, image.mime_type))
        else:
            blocks.append(TextContent(type="text", text=image.data.decode("utf-8", "replace")))
    return blocks


@tools.tool(
    title="Run Python in a persistent session",
    description="""
Run Python code in a box's persistent interpreter, like a notebook cell: variables,
imports and open files stay for the next python_run in the same box and session. The
value of a last expression is returned as `result`; an exception is `error` (type,
message, traceback), not a failed call. Output streams as progress. Pictures (e.g.
matplotlib figures shown with plt.show()) come back as image content. A cell running
past timeout_seconds is interrupted (state kept); one that ignores the interrupt is
killed and session_lost says its state is gone. Needs python3 in the box's image. Use
python_reset to start afresh, exec_run for shell commands.""",
    destructive=True,
)
async def python_run(
    call: ToolCall, args: PythonRunInput
) -> Annotated[CallToolResult, PythonRunResult]:
    entry = await call.box(args.box)
    send, receive = anyio.create_memory_object_stream[OutputChunk](math.inf)

    async def on_output(chunk: OutputChunk) -> None:
        await send.send(chunk)

    result: PythonRunResult | None = None
    async with entry.in_use(call.heard):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_progress, call, receive)
            async with send:
                result = await call.services.python.run(
                    entry.box,
                    args.code,
                    session=args.session,
                    timeout_seconds=args.timeout_seconds,
                    on_output=on_output,
                )
    assert result is not None
    return CallToolResult(
        content=_content(result),
        structured_content=result.model_dump(mode="json"),
        is_error=False,
    )


@tools.tool(
    title="Reset a Python session",
    description="""
End a box's Python session (its interpreter, variables and imports); the next
python_run in that session starts a fresh one. Resetting a session that is not running
is fine.""",
    destructive=True,
    idempotent=True,
)
async def python_reset(call: ToolCall, args: PythonResetInput) -> PythonResetResult:
    entry = await call.box(args.box)
    return await call.services.python.reset(entry.box, args.session)
