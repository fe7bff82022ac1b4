"""Executions: what ran, its output, and how it ended, readable by cursor from any replica.

The replica that starts an execution follows it: a background task (``Follower``)
holds the execution's lease in the state store (``execution_lease``), renewed
while it runs, and consumes ``Execution.output()`` as it is produced (so the box
never stalls on an unread pipe) into:

- the state store's output (``append_stream``: interleaved, addressed by byte
  cursors, per-stream totals kept with the bytes), which every replica reads
  (``exec_read``, the output resource, progress);
- a head-and-tail ``Capture`` per stream for the capped text of ``exec_run``'s
  result (``capped``: both streams within one cap, counted as the result is
  sent), and written into the ``ExecRecord`` when it ends.

The same task enforces the timeout (kill at the deadline, say so) and writes the
exit into the record. Records belong to an owner, like boxes.

Takeover: a replica that dies leaves its lease to lapse. Whichever replica asks
first (a reader that finds the execution running with nobody holding its lease,
or the periodic sweep) takes the lease and re-attaches through the runtime
(``Box.attach``) from the per-stream totals stored so far; the store skips what
it already has and refuses gaps, so the output has no gap and no duplicate
whenever the follower died. Only the REST runtime can re-attach; elsewhere the
record ends with an error saying the execution was lost with its replica.

A replica that stops (shutdown) kills what it follows with the in-process store,
as one server always did; with a shared store it hands its executions over
instead (releases their leases, kills nothing), like it leaves its boxes.

Control (stdin, signals, kill) needs the follower's runtime handle: a replica
that does not follow the execution passes the request through the store
(``push_control``) and the follower carries it out within ``CONTROL_POLL_SECONDS``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import anyio
import anyio.abc

from ..runtime.base import Execution, Runtime
from ..runtime.errors import BoxliteError, InvalidStateError, NotFoundError, quote_reference
from ..runtime.types import ExecResult, StreamName
from .state import (
    ExecRecord,
    InProcessState,
    OutputSize,
    StateStore,
    StateUnavailableError,
    execution_lease,
)

logger = logging.getLogger(__name__)

#: How long a killed execution may take to end before its output is abandoned.
KILL_GRACE_SECONDS = 10.0
#: How long a follower's lease lasts without renewal (renewed at a third of it).
DEFAULT_LEASE_SECONDS: Final = 10.0
#: How often a follower looks for control requests other replicas passed on.
CONTROL_POLL_SECONDS: Final = 0.2


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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


@dataclass(frozen=True)
class ExecView:
    """An execution as any replica reads it from the store: its record and output size."""

    record: ExecRecord
    size: OutputSize

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def owner(self) -> str:
        return self.record.owner

    @property
    def box_id(self) -> str:
        return self.record.box_id

    @property
    def box_label(self) -> str:
        return self.record.box_label

    @property
    def command(self) -> str:
        return self.record.command

    @property
    def timeout_seconds(self) -> float:
        return self.record.timeout_seconds

    @property
    def running(self) -> bool:
        return self.record.running

    @property
    def exit_code(self) -> int | None:
        return self.record.exit_code

    @property
    def signal(self) -> int | None:
        return self.record.signal

    @property
    def timed_out(self) -> bool:
        return self.record.timed_out

    @property
    def killed(self) -> bool:
        return self.record.killed

    @property
    def stdin_closed(self) -> bool:
        return self.record.stdin_closed

    @property
    def error(self) -> str | None:
        return self.record.error

    @property
    def duration_ms(self) -> int | None:
        return self.record.duration_ms

    @property
    def elapsed_ms(self) -> int:
        """How long it has run so far (its duration once it ended); wall clock, since
        the replica that started it may not be the one asking."""
        if self.record.duration_ms is not None:
            return self.record.duration_ms
        return int((datetime.now(UTC) - self.record.started_at).total_seconds() * 1000)

    @property
    def uri(self) -> str:
        return output_uri(self.record.id)

    @property
    def stored(self) -> int:
        """Bytes readable by cursor (at most the stored cap)."""
        return self.size.stored

    @property
    def dropped(self) -> int:
        """Bytes produced beyond the stored cap: counted, not kept."""
        return self.size.dropped

    @property
    def total_bytes(self) -> int:
        return self.size.total


def omitted_marker(execution_id: str, omitted: int) -> str:
    return (
        f"\n[... {omitted} bytes cut here; the full output is the resource "
        f"{output_uri(execution_id)}, or read it with exec_read ...]\n"
    )


class Follower:
    """The replica's part in one execution: its runtime handle, pumped into the store.

    It holds the execution's lease while it runs; losing it (this replica stalled
    and another took over) stops the pump without killing the process.
    """

    def __init__(
        self,
        *,
        record: ExecRecord,
        execution: Execution,
        state: StateStore,
        holder: str,
        lease_seconds: float,
        result_cap_bytes: int,
        offsets: OutputSize | None = None,
    ) -> None:
        self.record = record
        self.execution = execution
        self.state = state
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.taken_over = offsets is not None
        self.size = offsets or OutputSize(stored=0, total=0)
        self._offsets: dict[StreamName, int] = {
            "stdout": self.size.stdout,
            "stderr": self.size.stderr,
        }
        self.result_cap_bytes = result_cap_bytes  # both streams together
        # Each holds the whole cap: which stream gets how much is decided when shown.
        self.stdout = Capture(result_cap_bytes)
        self.stderr = Capture(result_cap_bytes)
        self.result: ExecResult | None = None
        self.lost_lease = False
        self._started = time.monotonic()
        self.done = anyio.Event()
        self._changed = anyio.Event()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def view(self) -> ExecView:
        return ExecView(self.record.model_copy(), self.size)

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
            texts.append(first + (omitted_marker(self.id, cut) + last if cut else ""))
            cuts.append(cut)
        return CappedOutput(
            stdout=texts[0],
            stderr=texts[1],
            stdout_truncated=cuts[0] > 0,
            stderr_truncated=cuts[1] > 0,
        )

    # -- output --------------------------------------------------------------
    async def _append(self, stream: StreamName, data: bytes) -> None:
        (self.stdout if stream == "stdout" else self.stderr).add(data)
        self.size = await self.state.append_stream(self.id, stream, self._offsets[stream], data)
        self._offsets[stream] += len(data)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def read(self, cursor: int, max_bytes: int) -> list[tuple[StreamName, bytes]]:
        return await self.state.read_output(self.id, cursor, max_bytes)

    async def wait_beyond(self, cursor: int) -> None:
        """Return once output beyond ``cursor`` is stored or the execution has ended."""
        while self.size.stored <= cursor and not self.done.is_set():
            await self._changed.wait()

    async def _save(self) -> None:
        """Write the record (stdin closed, killed, the end) for every replica to read."""
        await self.state.put_execution(self.record)

    # -- control -------------------------------------------------------------
    async def kill(self) -> None:
        if self.done.is_set():
            return
        self.record.killed = True
        await self.execution.kill()
        await self._save_quietly()

    async def write_stdin(self, data: bytes) -> None:
        if self.record.stdin_closed:
            raise InvalidStateError(
                f"The stdin of execution {self.id} is closed; start a new execution to send input."
            )
        await self.execution.write_stdin(data)

    async def close_stdin(self) -> None:
        self.record.stdin_closed = True
        await self.execution.close_stdin()
        await self._save_quietly()

    async def signal(self, signum: int) -> None:
        await self.execution.signal(signum)

    async def _save_quietly(self) -> None:
        try:
            await self._save()
        except StateUnavailableError as exc:
            logger.warning("execution %s: record not saved: %s", self.id, exc.message)

    async def carry_out(self, message: dict[str, Any]) -> None:
        """One control request (see ``Executions._control``); errors are the caller's."""
        op = message.get("op")
        if op == "stdin":
            await self.write_stdin(base64.b64decode(str(message.get("data", ""))))
        elif op == "eof":
            await self.close_stdin()
        elif op == "signal":
            await self.signal(int(message.get("signal", 15)))
        elif op == "kill":
            await self.kill()
        else:
            logger.warning("execution %s: unknown control request %r ignored", self.id, op)

    async def _carry_out_passed_on(self, raw: bytes) -> None:
        """A control request another replica passed on: its caller has had its answer,
        so a failure is logged (the execution's state says the rest)."""
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("not an object")
            await self.carry_out(message)
        except (ValueError, TypeError) as exc:
            logger.warning("execution %s: malformed control request ignored: %s", self.id, exc)
        except BoxliteError as exc:
            logger.info("execution %s: passed-on control failed: %s", self.id, exc.kind)

    # -- the consumer task ---------------------------------------------------
    async def run(self, task_group: anyio.abc.TaskGroup, on_exit: Callable[[], None]) -> None:
        """Consume the output to the end, enforce the timeout, record the exit."""
        pump = anyio.CancelScope()
        task_group.start_soon(self._watchdog, pump)
        task_group.start_soon(self._keep_lease, pump)
        try:
            with pump:
                async for chunk in self.execution.output():
                    await self._append(chunk.stream, chunk.data)
                self.result = await self.execution.wait()
            if self.result is None and not self.lost_lease:
                # The watchdog abandoned a process that would not die.
                with anyio.move_on_after(KILL_GRACE_SECONDS):
                    self.result = await self.execution.wait()
                if self.result is None:
                    self.record.error = (
                        "The process did not end after it was killed; its output is incomplete."
                    )
        except StateUnavailableError as exc:  # output cannot be kept: do not run on unseen
            self.record.error = exc.message
            logger.warning("execution %s: the state store failed; killing it", self.id)
            with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                await self.kill_quietly()
        except BoxliteError as exc:
            self.record.error = exc.message
            logger.info("execution %s failed: %s", self.id, exc.kind)
        except Exception:  # a runtime bug must not take the server's task group down
            logger.exception("following execution %s failed", self.id)
            self.record.error = (
                "The server lost track of this execution (internal error); it was killed."
            )
        finally:
            if self.lost_lease:
                pass  # another replica follows it now: neither kill it nor record its end
            elif self.result is None and self.record.error is None:
                # Cancelled (server shutting down): never leave the process running.
                self.record.error = "The server stopped following this execution; it was killed."
                with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                    await self.kill_quietly()
            with anyio.CancelScope(shield=True):
                await self._finish(on_exit)

    async def _keep_lease(self, pump: anyio.CancelScope) -> None:
        """Renew the lease while it runs; carry out control requests passed on meanwhile.
        A lost lease (another replica took over) stops the pump."""
        lease = execution_lease(self.id)
        renew_every = self.lease_seconds / 3
        renewed = time.monotonic()
        while not self.done.is_set():
            with anyio.move_on_after(CONTROL_POLL_SECONDS):
                await self.done.wait()
            if self.done.is_set():
                return
            try:
                for raw in await self.state.take_control(self.id):
                    await self._carry_out_passed_on(raw)
                if time.monotonic() - renewed >= renew_every:
                    if not await self.state.renew_lease(lease, self.holder, self.lease_seconds):
                        logger.warning(
                            "execution %s: lease lost; another replica follows it", self.id
                        )
                        self.lost_lease = True
                        pump.cancel()
                        return
                    renewed = time.monotonic()
            except StateUnavailableError as exc:
                logger.warning("execution %s: lease not renewed: %s", self.id, exc.message)

    async def _watchdog(self, pump: anyio.CancelScope) -> None:
        elapsed = (datetime.now(UTC) - self.record.started_at).total_seconds()
        with anyio.move_on_after(max(0.0, self.record.timeout_seconds - elapsed)):
            await self.done.wait()
            return
        if self.done.is_set():
            return
        self.record.timed_out = True
        logger.info(
            "execution %s timed out after %ss; killing it", self.id, self.record.timeout_seconds
        )
        await self.kill_quietly()
        with anyio.move_on_after(KILL_GRACE_SECONDS):
            await self.done.wait()
            return
        pump.cancel()

    async def hand_over(self) -> None:
        """Stop following without killing (this replica stops): the pump stops when
        the server's tasks are cancelled, and the lease goes back at once."""
        self.lost_lease = True
        try:
            await self.state.release_lease(execution_lease(self.id), self.holder)
        except StateUnavailableError:
            pass  # it lapses by itself
        logger.info("execution %s handed over to the other replicas", self.id)

    async def kill_quietly(self) -> None:
        try:
            await self.kill()
        except BoxliteError as exc:
            logger.info("killing execution %s failed: %s", self.id, exc.kind)
        except Exception:  # background cleanup: log, never crash the server
            logger.exception("killing execution %s failed", self.id)

    async def _finish(self, on_exit: Callable[[], None]) -> None:
        record = self.record
        if not self.lost_lease:
            if self.result is not None:
                record.exit_code = self.result.exit_code
                record.signal = self.result.signal
                record.timed_out = record.timed_out or self.result.timed_out
                if self.result.error_message and record.error is None and not self.result.success:
                    record.error = self.result.error_message
                if not self.taken_over:  # its own measure covers the whole run
                    record.duration_ms = self.result.duration_ms
            if record.duration_ms is None:
                started = record.started_at
                record.duration_ms = int((datetime.now(UTC) - started).total_seconds() * 1000)
            if record.signal == 9 and not record.timed_out:
                record.killed = True
            record.running = False
            record.stdout_total = self._offsets["stdout"]
            record.stderr_total = self._offsets["stderr"]
            for name, capture in (("stdout", self.stdout), ("stderr", self.stderr)):
                head, tail = capture.window(capture.kept)
                setattr(record, f"{name}_head", head)
                setattr(record, f"{name}_tail", tail)
            await self._save_quietly()
            try:
                await self.state.release_lease(execution_lease(self.id), self.holder)
            except StateUnavailableError:
                pass  # it lapses by itself
        self.done.set()
        self._notify()
        on_exit()


class Executions:
    """Every execution of the owners, in the state store; the ones this replica follows.

    ``runtime`` is what a taking-over follower re-attaches through; ``holder``
    names this replica in leases.
    """

    def __init__(
        self,
        *,
        state: StateStore,
        runtime: Runtime | None,
        max_running: int,
        result_cap_bytes: int,
        holder: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.state = state
        self.runtime = runtime
        self.max_running = max_running
        self.result_cap_bytes = result_cap_bytes
        self.holder = holder or replica_id()
        self.lease_seconds = lease_seconds
        #: Other replicas share the store: a stopping one hands its executions over.
        self.shared = not isinstance(state, InProcessState)
        self._followed: dict[str, Follower] = {}
        self._taking: set[str] = set()
        self._task_group: anyio.abc.TaskGroup | None = None

    async def start(
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
    ) -> Follower:
        """Record a started execution and begin following it."""
        record = ExecRecord(
            id=f"exec-{secrets.token_hex(8)}",
            owner=owner,
            box_id=box_id,
            box_label=box_label,
            command=command,
            timeout_seconds=timeout_seconds,
            runtime_execution_id=execution.id,
        )
        try:
            await self.state.acquire_lease(
                execution_lease(record.id), self.holder, self.lease_seconds
            )
            await self.state.put_execution(record)
        except StateUnavailableError:
            with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                try:
                    await execution.kill()
                except BoxliteError:
                    pass
            raise
        return self._follow(self._follower(record, execution), task_group, on_exit)

    def _follower(
        self, record: ExecRecord, execution: Execution, offsets: OutputSize | None = None
    ) -> Follower:
        return Follower(
            record=record,
            execution=execution,
            state=self.state,
            holder=self.holder,
            lease_seconds=self.lease_seconds,
            result_cap_bytes=self.result_cap_bytes,
            offsets=offsets,
        )

    def _follow(
        self, follower: Follower, task_group: anyio.abc.TaskGroup, on_exit: Callable[[], None]
    ) -> Follower:
        self._followed[follower.id] = follower

        def finished() -> None:
            self._followed.pop(follower.id, None)
            on_exit()

        task_group.start_soon(follower.run, task_group, finished)
        return follower

    def running_count(self) -> int:
        """Executions this replica follows (its share of the running limit)."""
        return len(self._followed)

    def followed(self, execution_id: str) -> Follower | None:
        return self._followed.get(execution_id)

    async def get(self, owner: str, execution_id: str) -> ExecView:
        """The owner's execution by id, as stored; a running one nobody follows any more
        is taken over first. NotFoundError lists the owner's recent ones."""
        record = await self.state.get_execution(execution_id)
        if record is None or record.owner != owner:
            mine = [r.id for r in await self.state.executions(owner)]
            known = ", ".join(mine[-10:]) if mine else "none"
            raise NotFoundError(
                f"No execution with that id ({quote_reference(execution_id)}) among yours "
                f"(recent: {known}). Execution ids "
                "come from exec_run or exec_start; old finished ones are forgotten."
            )
        if record.running and execution_id not in self._followed:
            if await self._take_over_if_lapsed(record):
                record = await self.state.get_execution(execution_id) or record
        return ExecView(record, await self.state.output_size(execution_id))

    async def owned_by(self, owner: str) -> list[ExecRecord]:
        return await self.state.executions(owner)

    async def read(
        self, execution_id: str, cursor: int, max_bytes: int
    ) -> list[tuple[StreamName, bytes]]:
        return await self.state.read_output(execution_id, cursor, max_bytes)

    async def wait(self, execution_id: str, cursor: int, *, until_exit: bool) -> None:
        """Until output beyond ``cursor`` is stored (``until_exit``: until it has ended)
        or it has ended; callers bound the wait."""
        follower = self._followed.get(execution_id)
        if follower is not None:  # followed here: woken by its own appends
            if until_exit:
                await follower.done.wait()
            else:
                await follower.wait_beyond(cursor)
            return
        while True:
            await self.state.wait_output(execution_id, cursor)
            record = await self.state.get_execution(execution_id)
            if not until_exit or record is None or not record.running:
                return
            if execution_id in self._followed:  # taken over meanwhile
                await self._followed[execution_id].done.wait()
                return
            if await self._take_over_if_lapsed(record):
                continue
            cursor = (await self.state.output_size(execution_id)).stored

    # -- control: by the follower's handle here, else passed on through the store ----
    async def _control(self, view: ExecView, op: str, **fields: Any) -> None:
        """Carry out ``op`` on ``view``'s execution: directly when this replica follows
        it, else queued for the replica that does (within ``CONTROL_POLL_SECONDS``)."""
        follower = self._followed.get(view.id)
        if follower is not None:
            await follower.carry_out({"op": op, **fields})
            return
        await self.state.push_control(view.id, json.dumps({"op": op, **fields}).encode())

    async def write_stdin(self, view: ExecView, data: bytes) -> None:
        if view.stdin_closed:
            raise InvalidStateError(
                f"The stdin of execution {view.id} is closed; start a new execution to send input."
            )
        await self._control(view, "stdin", data=base64.b64encode(data).decode())

    async def close_stdin(self, view: ExecView) -> None:
        await self._control(view, "eof")

    async def signal(self, view: ExecView, signum: int) -> None:
        await self._control(view, "signal", signal=signum)

    async def kill(self, view: ExecView) -> None:
        await self._control(view, "kill")

    async def wait_end(self, view: ExecView, seconds: float) -> ExecView:
        """``view`` once it ended, or as it is after ``seconds``."""
        with anyio.move_on_after(seconds):
            await self.wait(view.id, view.stored, until_exit=True)
        return await self.get(view.owner, view.id)

    # -- takeover ------------------------------------------------------------
    async def _take_over_if_lapsed(self, record: ExecRecord) -> bool:
        """Follow ``record`` if its follower's lease lapsed; whether this replica does now."""
        if self.runtime is None or self._task_group is None or record.id in self._taking:
            return False
        lease = execution_lease(record.id)
        if await self.state.lease_holder(lease) is not None:
            return False
        self._taking.add(record.id)
        try:
            if not await self.state.acquire_lease(lease, self.holder, self.lease_seconds):
                return False
            current = await self.state.get_execution(record.id)
            if current is None or not current.running:
                await self.state.release_lease(lease, self.holder)
                return False
            await self._attach(current, self._task_group)
            return True
        finally:
            self._taking.discard(record.id)

    async def _attach(self, record: ExecRecord, task_group: anyio.abc.TaskGroup) -> None:
        assert self.runtime is not None
        size = await self.state.output_size(record.id)
        elapsed = (datetime.now(UTC) - record.started_at).total_seconds()
        logger.info("execution %s: its follower is gone; re-attaching", record.id)
        try:
            if record.runtime_execution_id is None:
                raise InvalidStateError("the record names no runtime execution to re-attach to")
            box = await self.runtime.get(record.box_id)
            execution = await box.attach(
                record.runtime_execution_id,
                stdout_offset=size.stdout,
                stderr_offset=size.stderr,
                timeout_seconds=max(1.0, record.timeout_seconds - elapsed),
            )
        except BoxliteError as exc:
            record.running = False
            record.error = (
                "The server replica following this execution stopped, and no other "
                f"could follow it again ({exc.message}); its later output and exit are lost."
            )
            record.duration_ms = int(elapsed * 1000)
            await self.state.put_execution(record)
            await self.state.release_lease(execution_lease(record.id), self.holder)
            return
        self._follow(self._follower(record, execution, size), task_group, lambda: None)

    async def run_sweeper(
        self,
        task_group: anyio.abc.TaskGroup,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Take over running executions whose follower's lease lapsed, every half lease.

        ``task_group`` is where taken-over executions are followed (also those a
        reader takes over); it is set once this has started."""
        self._task_group = task_group
        task_status.started()
        while True:
            await anyio.sleep(self.lease_seconds / 2)
            try:
                for record in await self.state.executions():
                    if record.running and record.id not in self._followed:
                        await self._take_over_if_lapsed(record)
            except StateUnavailableError as exc:
                logger.warning("execution sweep skipped: %s", exc.message)
            except Exception:  # never let the sweep die: the next one may succeed
                logger.exception("execution sweep failed")

    async def kill_all(self) -> None:
        """Shutdown: kill every execution this replica follows; with a shared store,
        hand them over instead (they belong to the deployment, like its boxes): the
        leases are released so that another replica re-attaches at once."""
        for follower in list(self._followed.values()):
            with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_SECONDS):
                if self.shared:
                    await follower.hand_over()
                else:
                    await follower.kill_quietly()

    def close(self) -> None:
        self._followed.clear()
