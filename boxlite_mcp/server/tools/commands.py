"""Execution tools: run to the end with live output, or start and follow by cursor."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import shlex
import signal as signals
from contextlib import AbstractAsyncContextManager
from typing import Annotated

import anyio
from mcp_types import CallToolResult, ResourceLink, TextContent

from ...runtime.errors import BoxliteError, InvalidArgumentError, UnsupportedError
from ...runtime.types import ExecRequest, StreamName
from ...sessions.executions import ExecView, Follower, fit_to_budget, sent_size, utf8_safe_end
from ...sessions.progress import Coalescer, send_note
from ...sessions.registry import BoxEntry
from ..errors import owner_text
from ..models import (
    CommandInput,
    ExecControlResult,
    ExecKillInput,
    ExecReadInput,
    ExecReadResult,
    ExecRunInput,
    ExecRunResult,
    ExecSignalInput,
    ExecStartInput,
    ExecStartResult,
    ExecWriteInput,
    ExecWriteResult,
)
from ..services import ToolCall
from .declare import ToolGroup

logger = logging.getLogger(__name__)

tools = ToolGroup()

#: How long exec_kill waits to confirm the process ended.
KILL_CONFIRM_SECONDS = 5.0


def _error(call: ToolCall, record: ExecView) -> str | None:
    """The execution's error, if any, as its owner should read it."""
    if not record.error:
        return None
    box = call.registry.cached_box(record.box_id)
    return owner_text(record.error, [box.name or box.id] if box else [])


def _status_line(record: ExecView, error: str | None) -> str:
    if record.running:
        return f"still running after {record.elapsed_ms} ms"
    parts = [f"exit code {record.exit_code}" if record.exit_code is not None else "no exit code"]
    if record.signal is not None:
        parts.append(f"ended by signal {record.signal}")
    if record.timed_out:
        parts.append(f"TIMED OUT after {record.timeout_seconds:g} s and was killed")
    elif record.killed:
        parts.append("killed")
    parts.append(f"in {record.duration_ms} ms")
    if error:
        parts.append(f"error: {error}")
    return ", ".join(parts)


def _decode(pieces: list[tuple[StreamName, bytes]], stream: StreamName) -> str:
    return b"".join(d for s, d in pieces if s == stream).decode("utf-8", errors="replace")


def _clip(pieces: list[tuple[StreamName, bytes]], max_bytes: int) -> list[tuple[StreamName, bytes]]:
    """The first ``max_bytes`` of ``pieces``."""
    clipped: list[tuple[StreamName, bytes]] = []
    for stream, data in pieces:
        if max_bytes <= 0:
            break
        clipped.append((stream, data[:max_bytes]))
        max_bytes -= len(data)
    return clipped


def _read_window(
    pieces: list[tuple[StreamName, bytes]], max_bytes: int
) -> list[tuple[StreamName, bytes]]:
    """The first ``max_bytes`` of the output read, not ending mid-character."""
    pieces = _clip(pieces, max_bytes)
    if pieces:
        stream, last = pieces[-1]
        keep = utf8_safe_end(last)
        if keep < len(last) and (keep or len(pieces) > 1):
            pieces[-1] = (stream, last[:keep])
    return pieces


def _parse_signal(value: int | str) -> int:
    if isinstance(value, int):
        if 1 <= value <= 64:
            return value
    else:
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name[3:].isdigit():
            return _parse_signal(int(name[3:]))
        try:
            return int(signals.Signals[name])
        except KeyError:
            pass
    raise InvalidArgumentError(
        f"Unknown signal {value!r}: use a name like TERM, INT, HUP, KILL or a number 1-64."
    )


async def _start(call: ToolCall, entry: BoxEntry, args: CommandInput, keep_open: bool) -> Follower:
    settings, executions = call.settings, call.executions
    if executions.running_count() >= settings.max_executions_kept:
        raise UnsupportedError(
            f"{settings.max_executions_kept} executions are already running on this "
            "server; wait for some to finish or kill them (exec_kill)."
        )
    timeout = min(
        args.timeout_seconds or settings.exec_default_timeout_seconds,
        settings.exec_max_timeout_seconds,
    )
    if args.command is not None:
        program, argv, shown = "sh", ["-c", args.command], args.command
    else:
        assert args.argv is not None
        program, argv, shown = args.argv[0], args.argv[1:], shlex.join(args.argv)
    request = ExecRequest(
        command=program,
        args=argv,
        env=args.env,
        working_dir=args.working_dir,
        timeout_seconds=timeout,
    )
    execution = await entry.box.exec(request)
    record = await executions.start(
        owner=call.who.owner,
        box_id=entry.id,
        box_label=entry.label,
        command=shown,
        execution=execution,
        timeout_seconds=timeout,
        task_group=call.task_group(),
        on_exit=entry.mark_used,
    )
    try:
        if args.stdin:
            await record.write_stdin(args.stdin.encode())
    except BoxliteError as exc:  # it may have exited without reading its input
        logger.info("stdin of %s not written: %s", record.id, exc.kind)
    if not keep_open:
        try:
            await record.close_stdin()
        except BoxliteError as exc:
            logger.info("stdin of %s not closed: %s", record.id, exc.kind)
    return record


async def _stream_progress(call: ToolCall, record: Follower) -> None:
    """Send the output as progress notifications until the execution ends."""
    settings, ctx = call.settings, call.ctx
    coalescer = Coalescer(settings.progress_chunk_bytes, settings.progress_interval_seconds)
    cursor = 0
    while True:
        if coalescer.room:
            pieces = await record.read(cursor, coalescer.room)
            for stream, data in pieces:
                coalescer.add(stream, data)
                cursor += len(data)
            if not pieces and cursor < record.size.stored:
                break  # the record was evicted under us
        drained = cursor >= record.size.stored
        if drained and record.done.is_set():
            break
        wait = coalescer.due_in(anyio.current_time())
        if wait == 0:
            await send_note(coalescer, ctx.report_progress)
            continue
        with anyio.move_on_after(math.inf if wait is None else wait):
            if drained:
                await record.wait_beyond(cursor)
            else:
                await anyio.sleep(math.inf)
    await send_note(coalescer, ctx.report_progress, final=True)
    if record.size.dropped:
        await ctx.report_progress(
            cursor + record.size.dropped,
            None,
            f"\n[{record.size.dropped} more bytes exceeded the server's output store and "
            "were not kept]\n",
        )


def _result_text(
    record: ExecView,
    error: str | None,
    stdout: str,
    stderr: str,
    follow: str | None = None,
) -> str:
    """What a model reads: one status line, each stream's text once, where the rest is."""
    parts = [_status_line(record, error)]
    for name, body in (("stdout", stdout), ("stderr", stderr)):
        if body:
            parts.append(f"--- {name} ---\n{body}" + ("" if body.endswith("\n") else "\n"))
    if not stdout and not stderr:
        parts.append("(no output)")
    parts.append(f"--- execution {record.id}; full output: {record.uri}")
    if follow:
        parts.append(follow)
    return "\n".join(parts)


def _follow_hint(record: ExecView, cursor: int, wait_seconds: float) -> str | None:
    """One sentence on how to get the rest of a command that is still running."""
    if not record.running:
        return None
    return (
        f"It is still running (it is killed at its {record.timeout_seconds:g} s timeout): "
        f"call exec_read with execution_id={record.id}, cursor={cursor}, until_exit=true "
        f"and wait_seconds={wait_seconds:g} for the rest of its output and its exit code."
    )


def _run_result(call: ToolCall, follower: Follower, waited: float) -> CallToolResult:
    """``waited``: how long the call waited, also a fair wait for each exec_read."""
    record = follower.view()
    error = _error(call, record)
    capped = follower.capped()
    cursor = record.stored
    follow = _follow_hint(record, cursor, max(waited, 1))
    result = ExecRunResult.of(
        record,
        error,
        stdout=capped.stdout,
        stderr=capped.stderr,
        stdout_truncated=capped.stdout_truncated,
        stderr_truncated=capped.stderr_truncated,
        stdout_bytes=follower.stdout.total,
        stderr_bytes=follower.stderr.total,
        timeout_seconds=record.timeout_seconds,
        next_cursor=cursor,
        next_step=follow,
    )
    text = _result_text(record, error, capped.stdout, capped.stderr, follow)
    return CallToolResult(
        content=[
            TextContent(type="text", text=text),
            ResourceLink(
                type="resource_link",
                uri=record.uri,
                name=f"output of {record.id}",
                description=f"Full output of `{record.command[:200]}` in box {record.box_label}",
                mime_type="text/plain",
            ),
        ],
        structured_content=result.model_dump(mode="json"),
        is_error=False,
    )


def _attending(call: ToolCall, record: ExecView) -> AbstractAsyncContextManager[None]:
    """Its owner is attending to this execution: its box is in use meanwhile."""
    return call.registry.attending(call.who.owner, record.box_id, call.heard)


@tools.tool(
    title="Run a command in a box",
    description="""
Run a command in a box and wait for it to finish; output streams as progress
notifications while it runs. `command` is a shell command line (`sh -c`: pipes, &&,
redirects work); `argv` is an exact argument list instead. Returns exit_code,
duration, timed_out/killed, and stdout/stderr. Long output keeps its head and tail
(stdout_truncated/stderr_truncated say so) and the full output is the resource at
output_uri. A command still running after return_after_seconds (default 50) keeps
running and the result says running=true: follow it with exec_read (next_step says
how). A timeout (default and maximum in runtime_info) kills the command and sets
timed_out. Cancelling the call before it returns kills the command. Each call is a
fresh process: `cd` or `export` do not carry over, so use working_dir/env or chain
with &&; files persist in the box. For servers, watchers or anything interactive use
exec_start instead.""",
    destructive=True,
)
async def exec_run(call: ToolCall, args: ExecRunInput) -> Annotated[CallToolResult, ExecRunResult]:
    entry = await call.box(args.box)
    return_after = args.return_after_seconds
    if return_after is None:
        return_after = call.settings.exec_return_after_seconds
    async with entry.in_use(call.heard):
        record = await _start(call, entry, args, keep_open=False)
        returned = False
        try:
            # Past the deadline the command runs on, unwatched until exec_read.
            with anyio.move_on_after(return_after):
                await _stream_progress(call, record)
                await record.done.wait()
            returned = True
        finally:
            if not returned:  # cancelled, or the client went away: never leave it running
                with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_CONFIRM_SECONDS):
                    await record.kill_quietly()
    return _run_result(call, record, return_after)


@tools.tool(
    title="Start a command in the background",
    description="""
Start a command in a box and return its execution_id at once, without waiting. Use it
for long or interactive programs (servers, REPLs, builds you want to watch). Follow it
with exec_read (output since a cursor, optionally waiting), feed it with exec_write
(set keep_stdin_open=true), stop it with exec_signal or exec_kill. The timeout still
applies. Same command/argv rules as exec_run.""",
    destructive=True,
)
async def exec_start(call: ToolCall, args: ExecStartInput) -> ExecStartResult:
    entry = await call.box(args.box)
    record = (await _start(call, entry, args, keep_open=args.keep_stdin_open)).view()
    return ExecStartResult(
        execution_id=record.id,
        box_id=entry.id,
        command=record.command,
        timeout_seconds=record.timeout_seconds,
        stdin_open=not record.stdin_closed,
        output_uri=record.uri,
    )


@tools.tool(
    title="Read an execution's output",
    description="""
Read output of an execution (from exec_start or exec_run) since `cursor` (0 = from
the start), plus its state and, once finished, its exit code. Pass back next_cursor
to continue where you left off; has_more means more is already there. wait_seconds
waits for new output (or with until_exit, for the exit) before answering, which
avoids busy polling.""",
    read_only=True,
)
async def exec_read(
    call: ToolCall, args: ExecReadInput
) -> Annotated[CallToolResult, ExecReadResult]:
    executions = call.executions
    record = await executions.get(call.who.owner, args.execution_id)
    cursor = min(args.cursor, record.stored)
    if args.wait_seconds > 0 and record.running:
        async with _attending(call, record):
            with anyio.move_on_after(args.wait_seconds):
                await executions.wait(record.id, cursor, until_exit=args.until_exit)
        record = await executions.get(call.who.owner, args.execution_id)
    budget = call.settings.result_output_cap_bytes
    read = await executions.read(record.id, cursor, args.max_bytes or budget)
    if args.max_bytes is not None:  # asked for: that many bytes, however they are sent
        pieces = _read_window(read, args.max_bytes)
    else:  # the result cap, counted as the result is sent

        def sent_at(limit: int) -> int:
            pieces = _read_window(read, limit)
            return sum(sent_size(_decode(pieces, s)) for s in ("stdout", "stderr"))

        # At least a byte, so that a reader always moves on (one byte is sent as 6 at most).
        pieces = _read_window(read, max(1, fit_to_budget(sent_at, budget, budget)))
    next_cursor = cursor + sum(len(d) for _, d in pieces)
    error = _error(call, record)
    has_more = next_cursor < record.stored
    result = ExecReadResult.of(
        record,
        error,
        stdout=_decode(pieces, "stdout"),
        stderr=_decode(pieces, "stderr"),
        cursor=cursor,
        next_cursor=next_cursor,
        has_more=has_more,
        total_bytes=record.total_bytes,
        dropped_bytes=record.dropped,
    )
    window = f"bytes {cursor}-{next_cursor} of {record.stored} stored"
    follow: str | None = None
    if has_more:
        follow = f"More is stored: call exec_read again with cursor={next_cursor}."
    else:
        follow = _follow_hint(record, next_cursor, max(args.wait_seconds, 1))
    text = _result_text(
        record,
        error,
        result.stdout,
        result.stderr,
        f"This window: {window}." + (f" {follow}" if follow else ""),
    )
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json"),
        is_error=False,
    )


@tools.tool(
    title="Write to an execution's stdin",
    description="""
Send text (or base64 bytes) to the stdin of a running execution started with
exec_start(keep_stdin_open=true); close=true sends EOF afterwards. Remember the
newline when a program reads lines.""",
    destructive=True,
)
async def exec_write(call: ToolCall, args: ExecWriteInput) -> ExecWriteResult:
    executions = call.executions
    record = await executions.get(call.who.owner, args.execution_id)
    if args.data_base64 is not None:
        try:
            data = base64.b64decode(args.data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError("data_base64 is not valid base64.") from None
    else:
        data = (args.text or "").encode()
    async with _attending(call, record):
        if data:
            await executions.write_stdin(record, data)
        if args.close:
            await executions.close_stdin(record)
    return ExecWriteResult(
        execution_id=record.id,
        bytes_written=len(data),
        stdin_closed=record.stdin_closed or args.close,
    )


@tools.tool(
    title="Signal an execution",
    description="""
Send a POSIX signal (TERM by default; INT is Ctrl-C) to a running execution, e.g. to
let a server shut down cleanly. Use exec_kill to end it for certain.""",
    destructive=True,
)
async def exec_signal(call: ToolCall, args: ExecSignalInput) -> ExecControlResult:
    executions = call.executions
    record = await executions.get(call.who.owner, args.execution_id)
    number = _parse_signal(args.signal)
    await call.registry.touch_id(call.who.owner, record.box_id)
    if not record.running:
        return ExecControlResult(
            execution_id=record.id,
            signal=number,
            running=False,
            message="It had already finished; nothing was sent.",
        )
    await executions.signal(record, number)
    record = await executions.wait_end(record, 0.2)
    return ExecControlResult(
        execution_id=record.id,
        signal=number,
        running=record.running,
        message=f"Sent signal {number}. exec_read shows what it did.",
    )


@tools.tool(
    title="Kill an execution",
    description="""
Kill a running execution and its children (SIGKILL) and wait briefly for it to end.
Its output so far stays readable with exec_read. Killing a finished one does nothing.""",
    destructive=True,
    idempotent=True,
)
async def exec_kill(call: ToolCall, args: ExecKillInput) -> ExecControlResult:
    executions = call.executions
    record = await executions.get(call.who.owner, args.execution_id)
    await call.registry.touch_id(call.who.owner, record.box_id)
    if not record.running:
        return ExecControlResult(
            execution_id=record.id,
            signal=9,
            running=False,
            message="It had already finished; nothing was killed.",
        )
    await executions.kill(record)
    record = await executions.wait_end(record, KILL_CONFIRM_SECONDS)
    return ExecControlResult(
        execution_id=record.id,
        signal=9,
        running=record.running,
        message="Killed." if not record.running else "Kill sent; it has not ended yet.",
    )
