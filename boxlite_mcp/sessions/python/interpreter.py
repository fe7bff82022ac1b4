"""One kernel process in a box: start it, run a cell on it, interrupt or kill it.

Built only on the runtime contract (``Box.exec`` with stdin kept open, the
execution's output stream, ``signal``, ``kill``), so it works on every runtime.

Reading is the delicate part. ``Execution.output()`` is an async generator that can be
iterated only once: cancelling a task while it awaits the next chunk would close it
for good. So the pump that reads frames for a cell runs shielded and is never
cancelled from outside; timeouts and cancelled calls act on the *kernel* instead
(SIGINT, then SIGKILL), which ends the cell and so the pump. Frames that arrive after
a cell's result (a background thread still printing) stay queued for the next cell.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources

import anyio

from ...runtime.base import Box, Execution
from ...runtime.errors import BoxliteError, InternalError, NotFoundError
from ...runtime.types import ExecRequest, OutputChunk
from ..executions import Capture
from .kernel import KIND_HELLO, KIND_IMAGE, KIND_RESULT, KIND_STDERR, KIND_STDOUT
from .models import PythonError, PythonImage, PythonLimits
from .protocol import Frame, FrameParser, ProtocolError, encode_request

logger = logging.getLogger(__name__)

#: The kernel's source, sent as ``python3 -c``: nothing is installed in the box.
KERNEL_SOURCE = resources.files(__package__).joinpath("kernel.py").read_text(encoding="utf-8")
#: How long a killed kernel may take to close its output before it is abandoned.
KILL_GRACE_SECONDS = 10.0
#: Bytes of the kernel's own stderr kept to explain a failed start or a crash.
DIAGNOSTICS_BYTES = 4096
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")

#: Receives each piece of the cell's output as it arrives (for progress).
OutputCallback = Callable[[OutputChunk], Awaitable[None]]


class NoPythonError(NotFoundError):
    """The box has no ``python3`` to run a session with."""


def no_python(box_label: str, detail: str = "") -> NoPythonError:
    return NoPythonError(
        f"box {box_label!r} has no python3 on its PATH{detail}: python_run needs a python3 "
        "(3.8 or newer) in the box's image, nothing else. Use an image that has one "
        "(e.g. python:3.12-slim), or run programs with exec_run."
    )


@dataclass
class CellOutcome:
    """What reading one cell produced; ``Interpreter.run`` fills it in."""

    stdout: Capture
    stderr: Capture
    result: str | None = None
    error: PythonError | None = None
    images: list[PythonImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The request reached the kernel (False: it had ended before this cell, which never ran).
    sent: bool = False
    completed: bool = False  # the kernel reported the cell's end
    timed_out: bool = False
    killed: bool = False
    cancelled: bool = False
    #: Why the kernel is gone, when it is.
    lost_reason: str | None = None


class Interpreter:
    """A running kernel; one cell at a time (the caller serialises, see ``manager``)."""

    def __init__(self, execution: Execution, box_label: str) -> None:
        self.execution = execution
        self.box_label = box_label
        self.python_version: str | None = None
        self.cells = 0
        self.alive = True
        self._chunks: AsyncIterator[OutputChunk] = execution.output()
        self._parser = FrameParser()
        self._frames: deque[Frame] = deque()
        self._diagnostics = bytearray()
        self._pumped_to_end = False
        #: Why the kernel ended, once it has (for the session's next call to tell).
        self.lost_reason: str | None = None

    @classmethod
    async def start(cls, box: Box, box_label: str, limits: PythonLimits) -> Interpreter:
        """Start ``python3`` with the kernel; NoPythonError when the box has none."""
        request = ExecRequest(command="python3", args=["-u", "-c", KERNEL_SOURCE])
        try:
            execution = await box.exec(request)
        except NotFoundError as exc:
            if "python3" in exc.message:
                raise no_python(box_label) from exc
            raise
        interpreter = cls(execution, box_label)
        try:
            await interpreter._hello(limits.start_timeout_seconds)
        except BaseException:  # failed or cancelled: leave no kernel behind, then re-raise
            with anyio.CancelScope(shield=True):
                await interpreter.kill()
            raise
        return interpreter

    async def _hello(self, seconds: float) -> None:
        hello: dict[str, object] = {}

        async def sink(frame: Frame) -> bool:
            if frame.kind == KIND_HELLO:
                hello.update(frame.json())
                return True
            return False

        try:
            with anyio.move_on_after(seconds):  # on timeout the kernel is killed below
                if await self._pump(sink):
                    self.python_version = str(hello.get("python", "")) or None
                    return
        except (ProtocolError, BoxliteError) as exc:
            await self.kill()
            raise InternalError(
                f"the Python session in box {self.box_label!r} did not start: {exc}"
            ) from exc
        await self.kill()
        if not hello and self._pumped_to_end:
            code = await self._exit_code()
            text = self.diagnostics
            if code in (126, 127) or "not found" in text or "No such file" in text:
                raise no_python(self.box_label, f" (exit code {code})")
            if "SyntaxError" in text:  # the kernel uses syntax of Python 3.8
                raise NoPythonError(
                    f"box {self.box_label!r} has a python3 too old for python_run, which needs "
                    f"3.8 or newer (it said: {text[-300:]}). Use an image with a newer "
                    "python3, or run programs with exec_run."
                )
            raise InternalError(
                f"python3 in box {self.box_label!r} exited with code {code} before the "
                f"Python session started; its stderr: {text or '(empty)'}"
            )
        raise InternalError(
            f"python3 in box {self.box_label!r} did not start a Python session within "
            f"{seconds:g} s; the box may be overloaded. Retry."
        )

    @property
    def diagnostics(self) -> str:
        """The kernel process's own stderr (not user output), last bytes."""
        return bytes(self._diagnostics).decode("utf-8", errors="replace").strip()

    async def _pump(self, sink: Callable[[Frame], Awaitable[bool]]) -> bool:
        """Hand frames to ``sink`` until it says done (True) or the output ends (False)."""
        while True:
            while self._frames:
                if await sink(self._frames.popleft()):
                    return True
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._pumped_to_end = True
                self.alive = False
                return False
            if chunk.stream == "stderr":
                self._diagnostics += chunk.data
                del self._diagnostics[:-DIAGNOSTICS_BYTES]
                continue
            self._frames.extend(self._parser.feed(chunk.data))

    async def run(
        self,
        code: str,
        *,
        limits: PythonLimits,
        cell_seconds: float,
        on_output: OutputCallback | None,
    ) -> CellOutcome:
        """Run one cell; never raises for anything the cell or the kernel does."""
        per_stream = limits.output_cap_bytes // 2
        outcome = CellOutcome(stdout=Capture(per_stream), stderr=Capture(per_stream))
        self.cells += 1
        cell = self.cells
        request = {
            "op": "run",
            "cell": cell,
            "code": code,
            "limits": {
                "result_chars": limits.result_cap_chars,
                "traceback_chars": limits.traceback_cap_chars,
                "max_images": limits.max_images,
                "max_image_bytes": limits.max_image_bytes,
            },
        }
        try:
            await self.execution.write_stdin(encode_request(request))
        except BoxliteError as exc:
            await self.kill()
            outcome.lost_reason = self.lost_reason = (
                f"it had ended, perhaps because the box stopped ({exc})"
            )
            return outcome
        outcome.sent = True
        reporting = on_output

        async def report(stream: str, data: bytes) -> None:
            nonlocal reporting
            capture = outcome.stdout if stream == "stdout" else outcome.stderr
            capture.add(data)
            if reporting is None or outcome.cancelled:
                return
            try:
                await reporting(
                    OutputChunk(stream="stdout" if stream == "stdout" else "stderr", data=data)
                )
            except Exception:  # progress is best effort: the cell's result still counts
                logger.debug("python session: output callback failed", exc_info=True)
                reporting = None

        async def sink(frame: Frame) -> bool:
            if frame.kind == KIND_STDOUT:
                await report("stdout", frame.payload)
            elif frame.kind == KIND_STDERR:
                await report("stderr", frame.payload)
            elif frame.kind == KIND_IMAGE:
                self._add_image(outcome, frame.payload, limits)
            elif frame.kind == KIND_RESULT:
                body = frame.json()
                if body.get("cell") != cell:
                    return False  # a stale result (cannot happen unless desynchronised)
                self._read_result(outcome, body)
                return True
            return False

        done = anyio.Event()
        pump_scope = anyio.CancelScope(shield=True)

        async def pump() -> None:
            with pump_scope:
                try:
                    outcome.completed = await self._pump(sink)
                    if not outcome.completed:
                        outcome.lost_reason = outcome.lost_reason or await self._ended_reason()
                except ProtocolError as exc:
                    outcome.lost_reason = f"its output channel was corrupted ({exc})"
                except BoxliteError as exc:
                    outcome.lost_reason = f"its output could not be read ({exc})"
            done.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump)
                try:
                    with anyio.move_on_after(cell_seconds):
                        await done.wait()
                    if not done.is_set():
                        outcome.timed_out = True
                        await self._stop_cell(outcome, done, pump_scope, limits)
                except anyio.get_cancelled_exc_class():
                    with anyio.CancelScope(shield=True):
                        outcome.cancelled = True
                        await self._stop_cell(outcome, done, pump_scope, limits)
                    raise
        finally:
            if not outcome.completed:
                with anyio.CancelScope(shield=True):
                    await self.kill()
                if outcome.killed:
                    outcome.lost_reason = (
                        "the cell did not stop within "
                        f"{limits.interrupt_grace_seconds:g} s of the interrupt, so the "
                        "Python process was killed"
                    )
                elif outcome.cancelled:
                    outcome.lost_reason = "a python_run call was cancelled and its cell ended"
                outcome.lost_reason = outcome.lost_reason or "the Python process ended"
                self.lost_reason = outcome.lost_reason
        return outcome

    async def _stop_cell(
        self,
        outcome: CellOutcome,
        done: anyio.Event,
        pump_scope: anyio.CancelScope,
        limits: PythonLimits,
    ) -> None:
        """Interrupt the cell; kill the kernel if it does not stop in time."""
        with contextlib.suppress(BoxliteError):
            await self.execution.signal(signal.SIGINT)
        with anyio.move_on_after(limits.interrupt_grace_seconds):
            await done.wait()
        if done.is_set():
            return
        outcome.killed = True
        await self.kill()
        with anyio.move_on_after(KILL_GRACE_SECONDS):
            await done.wait()
        if not done.is_set():  # the runtime did not end the output: abandon the reader
            pump_scope.cancel()
            await done.wait()

    @staticmethod
    def _read_result(outcome: CellOutcome, body: dict[str, object]) -> None:
        result = body.get("result")
        outcome.result = result if isinstance(result, str) else None
        error = body.get("error")
        if isinstance(error, dict):
            outcome.error = PythonError(
                type=str(error.get("type", "Exception")),
                message=str(error.get("message", "")),
                traceback=str(error.get("traceback", "")),
            )
        notes = body.get("notes")
        if isinstance(notes, list):
            outcome.notes.extend(str(n) for n in notes)

    @staticmethod
    def _add_image(outcome: CellOutcome, payload: bytes, limits: PythonLimits) -> None:
        mime_bytes, _, data = payload.partition(b"\n")
        mime = mime_bytes.decode("ascii", errors="replace")
        if mime not in IMAGE_MIMES:
            outcome.notes.append(f"An image of unsupported type {mime[:40]!r} was left out.")
        elif len(outcome.images) >= limits.max_images or len(data) > limits.max_image_bytes:
            outcome.notes.append(
                f"An image ({mime}, {len(data)} bytes) was left out: over the image limits."
            )
        else:
            outcome.images.append(PythonImage.of(mime, data))  # type: ignore[arg-type]

    async def _ended_reason(self) -> str:
        code = await self._exit_code()
        if code is None:
            return "the Python process ended"
        what = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            what += ", perhaps out of memory or the box stopped"
        text = self.diagnostics
        return f"the Python process ended ({what})" + (f": {text}" if text else "")

    async def _exit_code(self) -> int | None:
        with anyio.move_on_after(KILL_GRACE_SECONDS):
            return (await self.execution.wait()).exit_code
        return None

    async def kill(self) -> None:
        """End the kernel now (its state is lost). Idempotent."""
        self.alive = False
        with contextlib.suppress(BoxliteError):
            await self.execution.kill()

    async def close(self, grace: float) -> bool:
        """End the kernel: EOF on its stdin, SIGKILL after ``grace``. False if already gone."""
        was_alive = self.alive
        self.alive = False
        with contextlib.suppress(BoxliteError):
            await self.execution.close_stdin()
        with anyio.move_on_after(grace):
            await self.execution.wait()
            return was_alive
        await self.kill()
        return was_alive


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
