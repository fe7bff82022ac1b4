"""Execution records: what ran, its output, and how it ended, readable by cursor.

A background task per execution consumes ``Execution.output()`` as it is produced
(so the box never stalls on an unread pipe) into:

- an ``OutputStore`` holding the interleaved output up to
  ``stored_output_cap_bytes``, in memory while small and spooled to a temporary
  file beyond that, addressed by byte cursors (``exec_read``, progress, resources);
- a head-and-tail ``Capture`` per stream for the capped text in tool results
  (``capped``: both streams within one cap, counted as the result is sent).

The same task enforces the timeout (kill at the deadline, say so) and records the
exit. Records belong to an owner, like boxes.
"""

from __future__ import annotations

import bisect
import json
import logging
import secrets
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import anyio
import anyio.abc

from ..runtime.base import Execution
from ..runtime.errors import BoxliteError, InvalidStateError, NotFoundError, quote_reference
from ..runtime.types import ExecResult, StreamName

logger = logging.getLogger(__name__)

#: Output kept in memory before the store spools to a temporary file.
MEMORY_SPOOL_BYTES = 1024 * 1024
#: How long a killed execution may take to end before its output is abandoned.
KILL_GRACE_SECONDS = 10.0


def output_uri(execution_id: str) -> str:
    return f"boxlite://executions/{execution_id}/output"


def utf8_safe_end(data: bytes) -> int:
    """Length of ``data`` without a trailing incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = (
                1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            )
            return len(data) if back >= need else len(data) - back
    return len(data)


def sent_size(text: str) -> int:
    """Bytes ``text`` takes inside a JSON message, as results are sent.

    Caps count these, not output bytes: a control byte is sent as six (``\\u0000``)
    and an invalid UTF-8 byte as a three-byte replacement character, so 16 KiB of
    binary output would otherwise take up to 96 KiB of a model's context.
    """
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def fit_to_budget(sent_at: Callable[[int], int], limit: int, budget: int) -> int:
    """The largest window, ``limit`` bytes at most, whose text as sent (``sent_at``: the
    sent size of a window of n bytes) fits ``budget``; shrunk in proportion until it does."""
    size = sent_at(limit)
    while size > budget and limit > 0:
        limit = min(limit - 1, limit * budget // size)
        size = sent_at(limit)
    return limit


class OutputStore:
    """Interleaved output of both streams, addressed by byte offset, size-capped."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._file = tempfile.SpooledTemporaryFile(max_size=MEMORY_SPOOL_BYTES)
        self._starts: list[int] = []  # offset where each segment begins
        self._streams: list[StreamName] = []  # the stream of each segment
        self.size = 0  # bytes stored
        self.dropped = 0  # bytes beyond the cap, counted but not kept
        self.closed = False

    def append(self, stream: StreamName, data: bytes) -> None:
        keep = data[: max(0, self.cap_bytes - self.size)]
        self.dropped += len(data) - len(keep)
        if not keep or self.closed:
            return
        if not self._streams or self._streams[-1] != stream:
            self._starts.append(self.size)
            self._streams.append(stream)
        self._file.seek(self.size)
        self._file.write(keep)
        self.size += len(keep)

    def read(self, cursor: int, max_bytes: int) -> list[tuple[StreamName, bytes]]:
        """Pieces from ``cursor`` on, at most ``max_bytes`` in all, in order."""
        end = min(self.size, cursor + max_bytes)
        if cursor >= end or self.closed:
            return []
        self._file.seek(cursor)
        blob = self._file.read(end - cursor)
        pieces: list[tuple[StreamName, bytes]] = []
        index = bisect.bisect_right(self._starts, cursor) - 1
        position = cursor
        while position < end:
            seg_end = self._starts[index + 1] if index + 1 < len(self._starts) else self.size
            stop = min(seg_end, end)
            pieces.append((self._streams[index], blob[position - cursor : stop - cursor]))
            position = stop
            index += 1
        return pieces

    def close(self) -> None:
        self.closed = True
        self._file.close()


class Capture:
    """The head and tail of one stream, enough for a result of up to ``cap_bytes``."""

    def __init__(self, cap_bytes: int) -> None:
        self.head_cap = cap_bytes // 2
        self.tail_cap = cap_bytes - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    @property
    def kept(self) -> int:
        """Bytes held: the whole stream while it is no longer than the cap."""
        return len(self.head) + len(self.tail)

    @property
    def truncated(self) -> bool:
        return self.total > self.kept

    def window(self, limit: int) -> tuple[bytes, bytes]:
        """The first and last bytes of the stream, ``limit`` at most in all.

        The two are one piece (the tail empty) when the stream fits; else neither
        splits a UTF-8 sequence, so the cut never shows as a replacement character.
        """
        limit = min(limit, self.head_cap + self.tail_cap)
        if self.total <= limit:
            return bytes(self.head + self.tail), b""
        head_len = limit // 2
        tail_len = limit - head_len
        if self.truncated:
            head, tail = bytes(self.head[:head_len]), bytes(self.tail[-tail_len:])
        else:  # everything is held, contiguously
            whole = bytes(self.head + self.tail)
            head, tail = whole[:head_len], whole[len(whole) - tail_len :]
        head = head[: utf8_safe_end(head)]
        skip = 0
        while skip < min(3, len(tail)) and tail[skip] & 0xC0 == 0x80:
            skip += 1
        return head, tail[skip:]


@dataclass(frozen=True)
class CappedOutput:
    """Both streams of an execution as one result shows them, within one byte budget."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool


def _sent_window(capture: Capture, limit: int) -> tuple[str, str, int, int]:
    """``capture``'s window of ``limit`` bytes as text: its head and tail, their size as
    sent, and how many output bytes they show."""
    head, tail = capture.window(limit)
    first = head.decode("utf-8", errors="replace")
    last = tail.decode("utf-8", errors="replace")
    return first, last, sent_size(first) + sent_size(last), len(head) + len(tail)


def _sent_size_at(capture: Capture, limit: int) -> int:
    return _sent_window(capture, limit)[2]


def share_budget(stdout: int, stderr: int, budget: int) -> tuple[int, int]:
    """Split ``budget`` between two streams of these sizes (as sent): all of both when
    they fit, else the smaller keeps up to half and the larger gets the rest."""
    if stdout + stderr <= budget:
        return stdout, stderr
    if stderr <= stdout:
        err = min(stderr, budget // 2)
        return budget - err, err
    out = min(stdout, budget // 2)
    return out, budget - out


class ExecutionRecord:
    """One execution: its output, its state, and how it ended."""

    def __init__(
        self,
        *,
        owner: str,
        box_id: str,
        box_label: str,
        command: str,
        execution: Execution,
        timeout_seconds: float,
        stored_cap_bytes: int,
        result_cap_bytes: int,
    ) -> None:
        self.id = f"exec-{secrets.token_hex(8)}"
        self.owner = owner
        self.box_id = box_id
        self.box_label = box_label
        self.command = command
        self.execution = execution
        self.timeout_seconds = timeout_seconds
        self.started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self.store = OutputStore(stored_cap_bytes)
        self.result_cap_bytes = result_cap_bytes  # both streams together
        # Each holds the whole cap: which stream gets how much is decided when shown.
        self.stdout = Capture(result_cap_bytes)
        self.stderr = Capture(result_cap_bytes)
        self.result: ExecResult | None = None
        self.error: str | None = None  # in runtime terms; the server renders it for the owner
        self.timed_out = False
        self.killed = False
        self.stdin_closed = False
        self.duration_ms: int | None = None
        self.done = anyio.Event()
        self._changed = anyio.Event()

    # -- state ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self.done.is_set()

    @property
    def elapsed_ms(self) -> int:
        """How long it has run so far (its duration once it ended)."""
        if self.duration_ms is not None:
            return self.duration_ms
        return int((time.monotonic() - self._started) * 1000)

    @property
    def total_bytes(self) -> int:
        return self.stdout.total + self.stderr.total

    @property
    def exit_code(self) -> int | None:
        return None if self.result is None else self.result.exit_code

    @property
    def signal(self) -> int | None:
        return None if self.result is None else self.result.signal

    @property
    def uri(self) -> str:
        return output_uri(self.id)

    def omitted_marker(self, omitted: int) -> str:
        return (
            f"\n[... {omitted} bytes cut here; the full output is the resource "
            f"{self.uri}, or read it with exec_read ...]\n"
        )

    def capped(self) -> CappedOutput:
        """The output so far, both streams within the result cap as sent (head and tail
        of each, a marker naming the bytes cut and where they all are)."""
        captures = (self.stdout, self.stderr)
        costs = [_sent_window(capture, capture.kept)[2] for capture in captures]
        shares = share_budget(costs[0], costs[1], self.result_cap_bytes)
        texts: list[str] = []
        cuts: list[int] = []
        for capture, share in zip(captures, shares, strict=True):
            limit = fit_to_budget(partial(_sent_size_at, capture), capture.kept, share)
            first, last, _, shown = _sent_window(capture, limit)
            cut = capture.total - shown
            texts.append(first + (self.omitted_marker(cut) + last if cut else ""))
            cuts.append(cut)
        return CappedOutput(
            stdout=texts[0],
            stderr=texts[1],
            stdout_truncated=cuts[0] > 0,
            stderr_truncated=cuts[1] > 0,
        )

    # -- output --------------------------------------------------------------
    def _append(self, stream: StreamName, data: bytes) -> None:
        (self.stdout if stream == "stdout" else self.stderr).add(data)
        self.store.append(stream, data)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def read(self, cursor: int, max_bytes: int) -> list[tuple[StreamName, bytes]]:
        return self.store.read(cursor, max_bytes)

    async def wait_beyond(self, cursor: int) -> None:
        """Return once output beyond ``cursor`` is stored or the execution has ended."""
        while self.store.size <= cursor and not self.done.is_set():
            await self._changed.wait()

    # -- control -------------------------------------------------------------
    async def kill(self) -> None:
        if self.done.is_set():
            return
        self.killed = True
        await self.execution.kill()

    async def write_stdin(self, data: bytes) -> None:
        if self.stdin_closed:
            raise InvalidStateError(
                f"The stdin of execution {self.id} is closed; start a new execution to send input."
            )
        await self.execution.write_stdin(data)

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        await self.execution.close_stdin()

    # -- the consumer task ---------------------------------------------------
    async def run(self, task_group: anyio.abc.TaskGroup, on_exit: Callable[[], None]) -> None:
        """Consume the output to the end, enforce the timeout, record the exit."""
        pump = anyio.CancelScope()
        task_group.start_soon(self._watchdog, pump)
        try:
            with pump:
                async for chunk in self.execution.output():
                    self._append(chunk.stream, chunk.data)
                self.result = await self.execution.wait()
            if self.result is None:  # the watchdog abandoned a process that would not die
                with anyio.move_on_after(KILL_GRACE_SECONDS):
                    self.result = await self.execution.wait()
                if self.result is None:
                    self.error = (
                        "The process did not end after it was killed; its output is incomplete."
                    )
        except BoxliteError as exc:
            self.error = exc.message
            logger.info("execution %s failed: %s", self.id, exc.kind)
        except Exception:  # a runtime bug must not take the server's task group down
            logger.exception("following execution %s failed", self.id)
            self.error = "The server lost track of this execution (internal error); it was killed."
        finally:
            if self.result is None and self.error is None:
                # Cancelled (server shutting down): never leave the process running.
                self.error = "The server stopped following this execution; it was killed."
                with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                    await self.kill_quietly()
            self._finish(on_exit)

    async def _watchdog(self, pump: anyio.CancelScope) -> None:
        with anyio.move_on_after(self.timeout_seconds):
            await self.done.wait()
            return
        if self.done.is_set():
            return
        self.timed_out = True
        logger.info("execution %s timed out after %ss; killing it", self.id, self.timeout_seconds)
        await self.kill_quietly()
        with anyio.move_on_after(KILL_GRACE_SECONDS):
            await self.done.wait()
            return
        pump.cancel()

    async def kill_quietly(self) -> None:
        try:
            await self.kill()
        except BoxliteError as exc:
            logger.info("killing execution %s failed: %s", self.id, exc.kind)
        except Exception:  # background cleanup: log, never crash the server
            logger.exception("killing execution %s failed", self.id)

    def _finish(self, on_exit: Callable[[], None]) -> None:
        if self.result is not None:
            self.timed_out = self.timed_out or self.result.timed_out
            if self.result.error_message and self.error is None and not self.result.success:
                self.error = self.result.error_message
            self.duration_ms = self.result.duration_ms
        if self.duration_ms is None:
            self.duration_ms = int((time.monotonic() - self._started) * 1000)
        if self.signal == 9 and not self.timed_out:
            self.killed = True
        self.done.set()
        self._notify()
        on_exit()


class Executions:
    """Every execution this server follows, by id, owner-scoped."""

    def __init__(self, *, max_kept: int, stored_cap_bytes: int, result_cap_bytes: int) -> None:
        self.max_kept = max_kept
        self.stored_cap_bytes = stored_cap_bytes
        self.result_cap_bytes = result_cap_bytes
        self._records: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self._running: set[ExecutionRecord] = set()  # kept so counting never walks history

    def start(
        self,
        *,
        owner: str,
        box_id: str,
        box_label: str,
        command: str,
        execution: Execution,
        timeout_seconds: float,
        task_group: anyio.abc.TaskGroup,
        on_exit: Callable[[], None],
    ) -> ExecutionRecord:
        """Register a started execution and begin consuming its output."""
        record = ExecutionRecord(
            owner=owner,
            box_id=box_id,
            box_label=box_label,
            command=command,
            execution=execution,
            timeout_seconds=timeout_seconds,
            stored_cap_bytes=self.stored_cap_bytes,
            result_cap_bytes=self.result_cap_bytes,
        )
        self._records[record.id] = record
        self._running.add(record)
        self._evict()

        def finished() -> None:
            self._running.discard(record)
            on_exit()

        task_group.start_soon(record.run, task_group, finished)
        return record

    def running_count(self) -> int:
        return len(self._running)

    def get(self, owner: str, execution_id: str) -> ExecutionRecord:
        record = self._records.get(execution_id)
        if record is None or record.owner != owner:
            mine = [r.id for r in self._records.values() if r.owner == owner]
            known = ", ".join(mine[-10:]) if mine else "none"
            raise NotFoundError(
                f"No execution with that id ({quote_reference(execution_id)}) among yours "
                f"(recent: {known}). Execution ids "
                "come from exec_run or exec_start; old finished ones are forgotten."
            )
        return record

    def owned_by(self, owner: str) -> list[ExecutionRecord]:
        return [r for r in self._records.values() if r.owner == owner]

    def _evict(self) -> None:
        """Forget the oldest finished records beyond ``max_kept`` (visits only those)."""
        excess = len(self._records) - self.max_kept
        if excess <= 0:
            return
        victims: list[ExecutionRecord] = []
        for record in self._records.values():
            if not record.running:
                victims.append(record)
                if len(victims) == excess:
                    break
        for record in victims:
            del self._records[record.id]
            record.store.close()

    async def kill_all(self) -> None:
        """Kill every running execution (shutdown)."""
        for record in list(self._running):
            with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                await record.kill_quietly()

    def close(self) -> None:
        for record in self._records.values():
            record.store.close()
        self._records.clear()
        self._running.clear()
