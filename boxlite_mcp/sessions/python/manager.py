"""Named Python sessions per box: the engine behind ``python_run`` and ``python_reset``.

A session is a name (``default`` unless given) mapped to one kernel in one box. Calls
on one session are serialised by its lock, so two cells never interleave; a call that
cannot get the lock within its own timeout fails with a clear "busy" error rather than
queueing without bound. A session whose kernel died (killed after an ignored
interrupt, crashed, box stopped) starts afresh on its next call, and that call's
result says the earlier state is gone.

Boxes are keyed by id; resolving which box a caller may use (ownership) is the
caller's business, as for every other tool.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import anyio

from ...runtime.base import Box
from ...runtime.errors import InvalidArgumentError, InvalidStateError, NotFoundError
from ..executions import Capture
from .interpreter import CellOutcome, Interpreter, OutputCallback
from .models import (
    SESSION_NAME_PATTERN,
    PythonError,
    PythonLimits,
    PythonResetResult,
    PythonRunResult,
)

logger = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
#: How long ``python_reset`` lets an idle kernel exit on EOF before killing it.
CLOSE_GRACE_SECONDS = 2.0
_NAME = re.compile(SESSION_NAME_PATTERN)


def _quoted(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _text(capture: Capture) -> str:
    """The captured stream as text, with a marker where the middle was cut."""
    head, tail = capture.window(capture.kept)
    text = head.decode("utf-8", errors="replace")
    if not capture.truncated:
        return text + tail.decode("utf-8", errors="replace")
    omitted = capture.total - len(head) - len(tail)
    return text + f"\n[... {omitted} bytes cut ...]\n" + tail.decode("utf-8", errors="replace")


@dataclass(eq=False)
class _Slot:
    name: str
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    interpreter: Interpreter | None = None
    #: Why the previous kernel of this session ended, told once on the next call.
    lost_reason: str | None = None
    #: Removed by python_reset: a caller still waiting for the lock must look again.
    closed: bool = False


class PythonSessions:
    """Every Python session of this server, by box id and session name."""

    def __init__(self, limits: PythonLimits | None = None) -> None:
        self.limits = limits or PythonLimits()
        self._boxes: dict[str, dict[str, _Slot]] = {}

    def names(self, box_id: str) -> list[str]:
        """The sessions of a box, sorted."""
        return sorted(self._boxes.get(box_id, {}))

    # -- python_run ---------------------------------------------------------------------

    async def run(
        self,
        box: Box,
        code: str,
        *,
        session: str = DEFAULT_SESSION,
        timeout_seconds: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> PythonRunResult:
        """Run ``code`` as a cell of ``session`` in ``box``.

        Exceptions the cell raises, timeouts and a dying kernel are results, not errors;
        errors are for bad arguments, a busy session, a box without python3, or a kernel
        that cannot start.
        """
        label = box.name or box.id
        self._check_name(session, label)
        timeout = self._check_timeout(timeout_seconds)
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > self.limits.max_code_bytes:
            raise InvalidArgumentError(
                f"the code is {size} bytes, over the limit of {self.limits.max_code_bytes}: "
                "write larger programs to a file with file_write and run them from a cell"
            )
        started = time.monotonic()
        while True:
            slot = self._slot(box, session, label)
            acquired = False
            with anyio.move_on_after(timeout):
                await slot.lock.acquire()
                acquired = True
            if not acquired:
                raise InvalidStateError(
                    f"Python session {session!r} in box {label!r} is still running another "
                    f"cell after {timeout:g} s; wait for it, run in another session "
                    "(session=...), or end it with python_reset"
                )
            if not slot.closed:
                break
            slot.lock.release()  # reset while we waited: use the new slot
        try:
            return await self._run_locked(box, label, slot, code, timeout, on_output, started)
        finally:
            if slot.interpreter is not None and not slot.interpreter.alive:
                slot.lost_reason = slot.lost_reason or slot.interpreter.lost_reason
                slot.interpreter = None
            slot.lock.release()

    async def _run_locked(
        self,
        box: Box,
        label: str,
        slot: _Slot,
        code: str,
        cell_seconds: float,
        on_output: OutputCallback | None,
        started: float,
    ) -> PythonRunResult:
        notes: list[str] = []
        new_session = slot.interpreter is None
        if slot.interpreter is None:
            await self._start(box, label, slot, notes)
        interpreter = slot.interpreter
        if slot.closed or interpreter is None:  # python_reset came while the kernel started
            if interpreter is not None:
                await interpreter.kill()
            raise InvalidStateError(
                f"python_reset ended Python session {slot.name!r} in box {label!r} before "
                "this cell ran; run it again to start a fresh session"
            )
        outcome = await interpreter.run(
            code, limits=self.limits, cell_seconds=cell_seconds, on_output=on_output
        )
        if not outcome.sent and not slot.closed:  # the kernel had ended unseen: run afresh
            slot.lost_reason = outcome.lost_reason
            new_session = True
            interpreter = await self._start(box, label, slot, notes)
            outcome = await interpreter.run(
                code, limits=self.limits, cell_seconds=cell_seconds, on_output=on_output
            )
        if slot.closed:
            outcome.lost_reason = "python_reset ended the session during the cell"
        notes.extend(outcome.notes)
        notes.extend(self._explain(outcome, cell_seconds))
        error = outcome.error
        if outcome.lost_reason and (error is None or outcome.killed):
            error = PythonError(
                type="SessionLost",
                message=f"The Python session ended: {outcome.lost_reason}.",
                traceback="",
            )
        if outcome.lost_reason:
            slot.lost_reason = None  # told in this result already
            interpreter.lost_reason = None
        return PythonRunResult(
            box=label,
            session=slot.name,
            execution_count=interpreter.cells,
            new_session=new_session,
            stdout=_text(outcome.stdout),
            stderr=_text(outcome.stderr),
            stdout_truncated=outcome.stdout.truncated,
            stderr_truncated=outcome.stderr.truncated,
            result=outcome.result,
            error=error,
            images=outcome.images,
            timed_out=outcome.timed_out,
            session_lost=outcome.lost_reason is not None,
            duration_ms=int((time.monotonic() - started) * 1000),
            python_version=interpreter.python_version,
            notes=notes,
        )

    async def _start(self, box: Box, label: str, slot: _Slot, notes: list[str]) -> Interpreter:
        """A new kernel for ``slot``; ``notes`` says so when an earlier one had ended."""
        if slot.lost_reason:
            notes.append(
                f"The previous Python process of this session ended ({slot.lost_reason}); "
                "this call started a fresh one: earlier variables and imports are gone."
            )
        try:
            slot.interpreter = await Interpreter.start(box, label, self.limits)
        except BaseException:  # failed or cancelled: re-raised
            slot.interpreter = None
            if not slot.lost_reason:  # never started: do not count it against the box
                self._forget(box.id, slot)
            raise
        slot.lost_reason = None
        return slot.interpreter

    @staticmethod
    def _explain(outcome: CellOutcome, timeout: float) -> list[str]:
        if outcome.killed:
            return [
                f"The cell ran longer than {timeout:g} s and did not stop when interrupted, "
                "so the Python process was killed: its state (variables, imports, open "
                "files) is gone. The next python_run starts a fresh session."
            ]
        if outcome.lost_reason:
            return [
                f"The session ended during this cell ({outcome.lost_reason}): its state is "
                "gone. The next python_run starts a fresh session."
            ]
        if outcome.timed_out:
            return [
                f"The cell ran longer than {timeout:g} s and was interrupted "
                "(KeyboardInterrupt); the session and its state are kept."
            ]
        return []

    # -- python_reset -------------------------------------------------------------------

    async def reset(self, box: Box, session: str = DEFAULT_SESSION) -> PythonResetResult:
        """End a session (a running cell is killed); the next call starts afresh."""
        label = box.name or box.id
        self._check_name(session, label)
        slots = self._boxes.get(box.id, {})
        slot = slots.get(session)
        if slot is None:
            existing = ", ".join(repr(n) for n in sorted(slots)) or "none"
            raise NotFoundError(
                f"no Python session {_quoted(session)} in box {label!r}; its sessions: "
                f"{existing}. python_run starts one."
            )
        self._forget(box.id, slot)
        slot.closed = True
        interpreter = slot.interpreter
        was_running = slot.lock.locked() or (interpreter is not None and interpreter.alive)
        if interpreter is not None:
            if slot.lock.locked():  # a cell is running: end it now, its call reports it
                await interpreter.kill()
            else:
                await interpreter.close(CLOSE_GRACE_SECONDS)
        return PythonResetResult(
            box=label,
            session=session,
            was_running=was_running,
            remaining_sessions=self.names(box.id),
        )

    async def close_box(self, box_id: str) -> None:
        """End every session of a box (it is being removed or stopped)."""
        for slot in list(self._boxes.pop(box_id, {}).values()):
            slot.closed = True
            if slot.interpreter is not None:
                await slot.interpreter.kill()

    async def aclose(self) -> None:
        """End every session (server shutdown)."""
        for box_id in list(self._boxes):
            await self.close_box(box_id)

    # -- helpers ------------------------------------------------------------------------

    def _slot(self, box: Box, session: str, label: str) -> _Slot:
        slots = self._boxes.setdefault(box.id, {})
        slot = slots.get(session)
        if slot is None:
            if len(slots) >= self.limits.max_sessions_per_box:
                names = ", ".join(repr(n) for n in sorted(slots))
                raise InvalidStateError(
                    f"box {label!r} already has {len(slots)} Python sessions ({names}), the "
                    f"most allowed; cannot start session {_quoted(session)}. End one with "
                    "python_reset, or reuse one"
                )
            slot = slots[session] = _Slot(session)
        return slot

    def _forget(self, box_id: str, slot: _Slot) -> None:
        slots = self._boxes.get(box_id, {})
        if slots.get(slot.name) is slot:
            del slots[slot.name]
        if not slots:
            self._boxes.pop(box_id, None)

    @staticmethod
    def _check_name(session: str, label: str) -> None:
        if not _NAME.match(session):
            raise InvalidArgumentError(
                f"session name {_quoted(session)} (box {label!r}) is not valid: use 1-64 "
                "letters, digits, '.', '_' or '-', starting with a letter or digit "
                f"(default {DEFAULT_SESSION!r})"
            )

    def _check_timeout(self, timeout_seconds: float | None) -> float:
        if timeout_seconds is None:
            return self.limits.default_timeout_seconds
        if not timeout_seconds > 0 or timeout_seconds > self.limits.max_timeout_seconds:
            raise InvalidArgumentError(
                f"timeout_seconds {timeout_seconds!r} is out of range: give more than 0 and "
                f"at most {self.limits.max_timeout_seconds:g}"
            )
        return float(timeout_seconds)
