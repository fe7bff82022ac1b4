"""What both exec transports share: the ``base.Execution`` contract around a stream pump.

A ``RestExecution`` runs a background task (the pump) from ``start()`` on. The
pump reads the server's output stream (SSE in 0.9, a WebSocket in 0.10), feeds the
``OutputPipe`` and returns the ``ExecResult``; it resumes dropped connections by
itself. ``wait()`` only waits for it, so it works any number of times, from any
task, whether or not anyone reads the output.
"""

from __future__ import annotations

# asyncio: an execution's pump tasks outlive the call that started them.
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from ..errors import (
    BoxliteError,
    InternalError,
    InvalidStateError,
    NotFoundError,
    UnavailableError,
)
from ..shared.output import OutputPipe
from ..types import ExecRequest, ExecResult, OutputChunk
from .client import RestClient
from .types import ExecutionInfo, parse

logger = logging.getLogger(__name__)

SIGKILL = 9


class RestExecution:
    """One execution on a BoxLite server. Subclasses provide the transport."""

    def __init__(
        self,
        client: RestClient,
        box_id: str,
        execution_id: str,
        request: ExecRequest,
        *,
        offsets: tuple[int, int] = (0, 0),
    ) -> None:
        self._client = client
        self._box_id = box_id
        self._id = execution_id
        self._request = request
        self._pipe = OutputPipe()
        self._result: ExecResult | None = None
        self._error: BoxliteError | None = None
        self._done = asyncio.Event()
        self._stdin_closed = False
        self._stdin_lock = asyncio.Lock()
        self._killed = False
        self._started = time.monotonic()
        #: Why the stream is down, while the pump is reconnecting; None while it flows.
        self._drop_cause: str | None = None
        #: Where output starts per stream (stdout, stderr): 0 for an exec, the bytes
        #: already had for a re-attach (``RestBox.attach``).
        self._start_offsets = offsets

    def start(self, tasks: set[asyncio.Task[None]]) -> None:
        """Start the pump; ``tasks`` holds it until it ends (the runtime cancels leftovers)."""
        task = asyncio.get_running_loop().create_task(self._run(), name=f"boxlite-exec-{self._id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, box={self._box_id!r})"

    @property
    def id(self) -> str:
        return self._id

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- the pump --------------------------------------------------------------------

    async def _pump(self) -> ExecResult:
        raise NotImplementedError

    def _grace(self) -> float:
        settings = self._client.settings
        return min(settings.exec_grace, settings.timeout)

    async def _pump_until_overdue(self) -> ExecResult:
        """The pump, bounded: a request's ``timeout_seconds`` is the server's to enforce,
        but a server that does not end the execution ``_grace()`` seconds after it has
        the client kill it and stop waiting."""
        timeout = self._request.timeout_seconds
        if timeout is None:
            return await self._pump()
        loop = asyncio.get_running_loop()
        deadline = loop.time() - (time.monotonic() - self._started) + timeout + self._grace()
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await self._pump()
        except TimeoutError:
            if not scope.expired():
                raise
        return await self._overdue(limit=timeout)

    async def _overdue(self, *, limit: float) -> ExecResult:
        self._killed = True
        with contextlib.suppress(BoxliteError, TimeoutError):
            async with asyncio.timeout(self._client.settings.timeout):
                await self._send_kill()
        if self._drop_cause is not None:  # the server's fault, not the command's timeout
            raise UnavailableError(
                f"execution {self._id}: its output stream was down when its {limit:g}s "
                f"timeout ran out ({self._drop_cause}); the client killed it"
            )
        return ExecResult(
            exit_code=-SIGKILL,
            duration_ms=int((time.monotonic() - self._started) * 1000),
            timed_out=True,
            error_message=(
                f"the server did not end the execution within {self._grace():g}s of its "
                f"{limit:g}s timeout; the client killed it and stopped reading its output"
            ),
        )

    async def _settle(self, result: ExecResult) -> None:
        """Publish the result; a pump may call this early and tidy its connection after."""
        if not self._done.is_set():
            self._result = await self._complete(result)
            self._pipe.close()
            self._done.set()

    async def _run(self) -> None:
        error: BoxliteError | None = None
        try:
            await self._settle(await self._pump_until_overdue())
        except asyncio.CancelledError:
            error = UnavailableError(
                f"execution {self._id} was abandoned: the runtime was closed before it finished"
            )
            raise
        except BoxliteError as exc:
            error = exc
        except Exception as exc:  # a bug or an unforeseen answer: never a hang
            logger.exception("execution %s: output stream failed", self._id)
            error = InternalError(f"execution {self._id}: reading its output failed: {exc!r}")
        finally:
            if not self._done.is_set():
                self._error = error
                self._pipe.close(error)
                self._done.set()

    async def _complete(self, result: ExecResult) -> ExecResult:
        """Fill what the stream did not say: whether a timeout killed it, its duration."""
        if result.duration_ms is None:
            result.duration_ms = int((time.monotonic() - self._started) * 1000)
        timeout = self._request.timeout_seconds
        if timeout is not None and result.exit_code != 0 and not result.timed_out:
            info = await self._info_or_none()
            if info is not None and info.status == "timed_out":
                result.timed_out = True
                if info.duration_ms is not None:
                    result.duration_ms = info.duration_ms
        return result

    def _gone(self, cause: str) -> BoxliteError:
        """The error when the server no longer knows the execution."""
        if self._killed:
            return InternalError(f"execution {self._id} was killed and removed by the server")
        return NotFoundError(
            f"execution {self._id} in box {self._box_id} is gone: the server no longer knows it "
            f"(it restarted, or reaped the execution) after {cause}. Its remaining output "
            "and exit status are lost; run the command again."
        )

    async def _url(self, *tail: str) -> str:
        return await self._client.url("boxes", self._box_id, "executions", self._id, *tail)

    async def _info(self) -> ExecutionInfo:
        response = await self._client.request(
            "GET", await self._url(), what=f"read the status of execution {self._id}"
        )
        return parse(ExecutionInfo, response.content, f"read execution {self._id}")

    async def check_known(self) -> None:
        """NotFoundError (naming the execution) unless the server knows it: a re-attach
        asks first, so that an unknown id fails the call rather than the pump."""
        try:
            await self._info()
        except NotFoundError:
            raise NotFoundError(
                f"execution {self._id} in box {self._box_id} is unknown to the server "
                "(it restarted or reaped the execution): it cannot be re-attached"
            ) from None

    async def _info_or_none(self) -> ExecutionInfo | None:
        try:
            return await self._info()
        except BoxliteError as exc:
            logger.debug("execution %s: no status: %s", self._id, exc)
            return None

    # -- the contract ----------------------------------------------------------------

    def output(self) -> AsyncIterator[OutputChunk]:
        return self._pipe.chunks()

    async def wait(self) -> ExecResult:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result.model_copy()

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed:
            raise InvalidStateError(f"stdin of execution {self._id} is closed")
        if not data:
            return
        async with self._stdin_lock:
            if self._done.is_set():
                raise InvalidStateError(f"execution {self._id} has exited; its stdin is closed")
            await self._send_stdin(data)

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        async with self._stdin_lock:
            if not self._done.is_set():
                await self._ignoring_exit(self._send_eof())

    async def signal(self, signum: int) -> None:
        if signum == SIGKILL:
            await self.kill()
            return
        if not self._done.is_set():
            await self._ignoring_exit(self._send_signal(signum))

    async def kill(self) -> None:
        self._killed = True
        if not self._done.is_set():
            await self._ignoring_exit(self._send_kill())

    async def resize(self, cols: int, rows: int) -> None:
        if not self._request.tty:
            raise InvalidStateError(
                f"execution {self._id} has no TTY; start it with tty=true to resize"
            )
        if not self._done.is_set():
            await self._ignoring_exit(self._post_control("resize", {"cols": cols, "rows": rows}))

    async def _ignoring_exit(self, operation: object) -> None:
        """Run a control request; a 404/409 because the process already ended is no error."""
        assert asyncio.iscoroutine(operation)
        try:
            await operation
        except (NotFoundError, InvalidStateError):
            if self._done.is_set():
                return
            info = await self._info_or_none()
            if info is None or info.finished:
                return
            raise

    # -- transport hooks -------------------------------------------------------------

    async def _send_stdin(self, data: bytes) -> None:
        raise NotImplementedError

    async def _send_eof(self) -> None:
        raise NotImplementedError

    async def _send_signal(self, signum: int) -> None:
        await self._post_control("signal", {"signal": signum}, idempotency_key=True)

    async def _send_kill(self) -> None:
        await self._send_signal(SIGKILL)

    async def _post_control(
        self, what: str, body: dict[str, int], *, idempotency_key: bool = False
    ) -> None:
        await self._client.request(
            "POST",
            await self._url(what),
            json=body,
            idempotent=True,
            idempotency_key=idempotency_key,
            what=f"{what} execution {self._id}",
        )
