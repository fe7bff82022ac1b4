"""An SDK ``Execution`` behind the runtime contract's ``Execution``.

Two pump tasks read the SDK's stdout and stderr iterators as output arrives and
feed one ``OutputPipe``; one task awaits the SDK's ``wait()`` so that ``wait()``
here can be awaited any number of times by any number of tasks.

The SDK decodes output to ``str`` (lossily: bytes that are not UTF-8 arrive as
U+FFFD) and queues it without bound inside the native layer; this side is
bounded, but cannot push back further than the SDK lets it.

The SDK's stdio handles are taken once, in a worker thread, before the execution
is handed out: taking one is a synchronous call that can block on a lock the SDK
holds while it talks to its server (a kill in flight, say), and on the event loop
thread that could stall everything, a server in the same process included.

Timeouts are enforced here: at ``timeout_seconds`` the process is killed and the
result says ``timed_out``. The SDK also gets the timeout, plus a grace period, as
a backstop should this process stop watching.
"""

from __future__ import annotations

# asyncio: the SDK's streams are asyncio objects; their pumps outlive the exec call.
import asyncio
import logging
import signal as signals
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from ..errors import (
    BoxliteError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from ..shared.output import OutputPipe
from ..types import ExecRequest, ExecResult, OutputChunk
from .errors import Translator

logger = logging.getLogger(__name__)

#: Extra time the SDK's own timeout allows beyond ours (it is only a backstop).
SDK_TIMEOUT_GRACE_SECONDS = 5.0


class LocalExecution:
    """A command running in a box, through the SDK."""

    def __init__(
        self,
        sdk_execution: Any,
        handles: StdioHandles,
        request: ExecRequest,
        translator: Translator,
        started: float,
    ) -> None:
        self._sdk = sdk_execution
        self._request = request
        self._errors = translator
        self._started = started
        self._id = handles.id
        self._pipe = OutputPipe(producers=2)
        self._sources = {"stdout": handles.stdout, "stderr": handles.stderr}
        self._stdin = handles.stdin
        self._stdin_closed = self._stdin is None
        self._timed_out = False
        self._killed = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._result: asyncio.Task[ExecResult] = asyncio.create_task(self._await_exit())
        self._result.add_done_callback(_retrieve)
        for stream in ("stdout", "stderr"):
            self._tasks.append(asyncio.create_task(self._pump(stream)))
        if request.timeout_seconds is not None:
            self._tasks.append(asyncio.create_task(self._deadline(request.timeout_seconds)))

    @property
    def id(self) -> str:
        return self._id

    @property
    def done(self) -> bool:
        """The process has exited (its result is known)."""
        return self._result.done()

    def output(self) -> AsyncIterator[OutputChunk]:
        return self._pipe.chunks()

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed or self._stdin is None:
            raise InvalidStateError(
                f"stdin of execution {self._id} is closed; start a new execution to send input"
            )
        if self.done:
            raise InvalidStateError(f"execution {self._id} has exited; it reads no more input")
        await self._errors.call(
            f"write to stdin of execution {self._id}", self._stdin.send_input(bytes(data))
        )

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self._stdin is not None:
            await self._errors.call(f"close stdin of execution {self._id}", self._stdin.close())

    async def signal(self, signum: int) -> None:
        if not 1 <= signum < signals.NSIG:
            raise InvalidArgumentError(
                f"signal {signum} is not a signal number; use 1..{signals.NSIG - 1} "
                "(e.g. 15 for SIGTERM, 2 for SIGINT)"
            )
        if signum == signals.SIGKILL:
            # BoxLite servers refuse SIGKILL on the signal route: kill is its own call.
            await self.kill()
            return
        await self._ignore_gone(
            f"send signal {signum} to execution {self._id}", lambda: self._sdk.signal(signum)
        )

    async def kill(self) -> None:
        await self._ignore_gone(f"kill execution {self._id}", self._sdk.kill)
        self._killed = True

    async def resize(self, cols: int, rows: int) -> None:
        if not self._request.tty:
            raise InvalidStateError(
                f"execution {self._id} has no TTY; start it with tty=true to resize it"
            )
        if cols < 1 or rows < 1:
            raise InvalidArgumentError(f"TTY size must be positive, got {cols}x{rows}")
        await self._errors.call(
            f"resize the TTY of execution {self._id}", self._sdk.resize_tty(rows, cols)
        )

    async def wait(self) -> ExecResult:
        return await asyncio.shield(self._result)

    async def aclose(self) -> None:
        """Stop watching: cancel the pumps and the waiter (the process is not killed)."""
        for task in (*self._tasks, self._result):
            task.cancel()
        await asyncio.gather(*self._tasks, self._result, return_exceptions=True)

    async def _ignore_gone(self, action: str, send: Any) -> None:
        """Signal-like calls: no error when the process has already exited."""
        if self.done:
            return
        try:
            await self._errors.call(action, send())
        except (NotFoundError, InvalidStateError):
            return  # exited (or its box stopped) meanwhile: nothing left to signal
        except BoxliteError:
            if self.done:
                return
            raise

    async def _pump(self, stream: Literal["stdout", "stderr"]) -> None:
        try:
            source = self._sources.pop(stream)
            if source is None:
                return
            async for piece in source:
                data = (
                    piece.encode("utf-8", "surrogateescape")
                    if isinstance(piece, str)
                    else bytes(piece)
                )
                await self._pipe.put(stream, data)
        except asyncio.CancelledError:
            raise
        except Exception:  # the SDK ended the stream with an error: the result tells why
            logger.debug("%s of execution %s ended with an error", stream, self._id, exc_info=True)
        finally:
            self._pipe.close()

    async def _await_exit(self) -> ExecResult:
        raw = await self._errors.call(f"wait for execution {self._id}", self._sdk.wait())
        duration_ms = int((time.monotonic() - self._started) * 1000)
        exit_code = int(raw.exit_code)
        message = getattr(raw, "error_message", None)
        if self._killed and exit_code == -1 and message and "not found" in str(message):
            # Killed before the SDK attached to its output: BoxLite's kill also
            # forgets the execution, so the SDK only learns "not found". It was
            # this kill that ended it.
            logger.debug("execution %s killed before attach: %s", self._id, message)
            exit_code, message = -signals.SIGKILL, None
        timed_out = self._timed_out or (
            self._request.timeout_seconds is not None
            and exit_code < 0
            and duration_ms >= self._request.timeout_seconds * 1000
        )
        return ExecResult(
            exit_code=exit_code,
            duration_ms=duration_ms,
            error_message=str(message) if message else None,
            timed_out=timed_out,
        )

    async def _deadline(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._result), timeout=seconds)
        except TimeoutError:
            self._timed_out = True
            logger.debug("execution %s ran past %ss; killing it", self._id, seconds)
            try:
                await self.kill()
            except BoxliteError as exc:
                logger.warning("could not kill timed-out execution %s: %s", self._id, exc)
        except BoxliteError:
            pass  # the waiter failed; wait() reports it


@dataclass(frozen=True)
class StdioHandles:
    """What ``take_handles`` got from an SDK execution (None: the execution has none)."""

    id: str
    stdin: Any
    stdout: Any
    stderr: Any


async def take_handles(sdk_execution: Any) -> StdioHandles:
    """The SDK execution's id and stdio handles, taken off the event loop thread."""
    return await anyio.to_thread.run_sync(_take_all, sdk_execution)


def _take_all(sdk_execution: Any) -> StdioHandles:
    return StdioHandles(
        id=str(sdk_execution.id()),
        stdin=_take(sdk_execution, "stdin"),
        stdout=_take(sdk_execution, "stdout"),
        stderr=_take(sdk_execution, "stderr"),
    )


def _take(sdk_execution: Any, stream: str) -> Any:
    """The SDK's handle for one stdio stream, or None when the execution has none."""
    try:
        return getattr(sdk_execution, stream)()
    except RuntimeError:  # "stdin stream not available" and the like
        return None


def _retrieve(task: asyncio.Task[ExecResult]) -> None:
    """Mark a failed waiter's exception as seen; wait() re-raises it to its callers."""
    if not task.cancelled():
        task.exception()
