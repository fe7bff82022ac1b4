"""One command running in a bwrap box, its output streamed as produced.

The command runs as ``nsenter`` (joining the box's namespaces) started by a tiny
``sh`` that first joins the box's cgroups. Output pipes are read with event-loop
readers, not tasks: each readable event reads up to ``READ_BYTES`` and appends
to a queue. Memory stays bounded:

- once ``output()`` is being consumed, a reader pauses when ``HIGH_WATER`` bytes
  wait unread and resumes below ``LOW_WATER``: the pipe fills and the process
  blocks, exactly as with a slow terminal (backpressure, nothing dropped);
- before anyone calls ``output()``, the earliest ``UNREAD_OUTPUT_LIMIT`` bytes
  are kept and the rest is read and discarded, so the process never blocks and
  ``wait()`` returns (the contract in ``base.Execution``).

Exit is observed through a pidfd, so a background process that keeps the output
pipes open cannot delay ``wait()``; after exit, output is drained until the
pipes have been quiet for ``DRAIN_QUIET_SECONDS``.

This module uses the asyncio event loop directly (``add_reader``), which is
what anyio runs on here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from ..base import UNREAD_OUTPUT_LIMIT
from ..errors import InvalidArgumentError, InvalidStateError
from ..types import ExecResult, OutputChunk, StreamName

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
TIOCGPTPEER = 0x5441  # Linux >= 4.13: open the slave of a pty master without a path
TIOCSPTLCK = 0x40045431  # unlock the slave (what unlockpt(3) does)
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024
DRAIN_QUIET_SECONDS = 0.2


def open_pty(ptmx_fd: int) -> tuple[int, int]:
    """(master, slave) of a new pty from an open ``ptmx`` (e.g. the box's own devpts).

    The slave is opened from the master (``TIOCGPTPEER``), never by path, so it
    is the pty of that devpts instance and ``tty`` inside the box names it.
    """
    try:
        fcntl.ioctl(ptmx_fd, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(ptmx_fd, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        os.close(ptmx_fd)
        raise
    return ptmx_fd, slave


class _Output:
    """The queue between the pipe readers and the one ``output()`` consumer."""

    def __init__(self) -> None:
        self.chunks: deque[OutputChunk] = deque()
        self.queued = 0
        self.kept_unclaimed = 0
        self.dropped = 0
        self.claimed = False
        self.abandoned = False
        self.changed = asyncio.Event()

    def push(self, stream: StreamName, data: bytes) -> None:
        if self.abandoned:
            return
        if not self.claimed:
            if self.kept_unclaimed + len(data) > UNREAD_OUTPUT_LIMIT:
                self.dropped += len(data)
                return
            self.kept_unclaimed += len(data)
        self.chunks.append(OutputChunk(stream=stream, data=data))
        self.queued += len(data)
        self.changed.set()

    def pop(self) -> OutputChunk:
        chunk = self.chunks.popleft()
        self.queued -= len(chunk.data)
        return chunk

    @property
    def full(self) -> bool:
        return self.claimed and not self.abandoned and self.queued >= HIGH_WATER


class _Reader:
    """Reads one pipe (or the pty master) into the output queue."""

    def __init__(self, ex: BwrapExecution, fd: int, stream: StreamName, pty: bool) -> None:
        self.ex = ex
        self.fd = fd
        self.stream: StreamName = stream
        self.pty = pty
        self.paused = False
        self.done = False
        self.last_read = time.monotonic()
        os.set_blocking(fd, False)
        ex.loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            if not (exc.errno == errno.EIO and self.pty):  # EIO: every pty slave closed
                log.warning("reading the output of %s failed: %s", self.ex.id, exc)
            data = b""
        if not data:
            self.finish()
            return
        self.last_read = time.monotonic()
        self.ex.out.push(self.stream, data)
        if self.ex.out.full:
            self.pause()

    def pause(self) -> None:
        if not self.paused and not self.done:
            self.ex.loop.remove_reader(self.fd)
            self.paused = True

    def resume(self) -> None:
        if self.paused and not self.done:
            self.paused = False
            self.ex.loop.add_reader(self.fd, self._on_readable)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if not self.paused:
            self.ex.loop.remove_reader(self.fd)
        self.paused = False
        os.close(self.fd)
        self.ex.out.changed.set()


class BwrapExecution:
    """An Execution (see ``base.Execution``) of a process started by ``spawn``."""

    def __init__(
        self,
        exec_id: str,
        popen: subprocess.Popen[bytes],
        *,
        stdout_fd: int,
        stderr_fd: int | None,
        stdin_fd: int | None,
        pty_master: int | None,
        timeout: float | None,
        on_exit: Callable[[BwrapExecution, ExecResult], None] | None = None,
        oom_check: Callable[[], bool] | None = None,
        keep_fds: tuple[int, ...] = (),
    ) -> None:
        self._id = exec_id
        self._keep_fds = keep_fds
        self.loop = asyncio.get_running_loop()
        self.popen = popen
        self.started = time.monotonic()
        self.out = _Output()
        self._pty_master = pty_master
        self._tty = pty_master is not None
        self._stdin_fd = stdin_fd
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)
        self._stdin_closed = stdin_fd is None and pty_master is None
        self._stdin_lock = asyncio.Lock()
        self._on_exit = on_exit
        self._oom_check = oom_check
        self._timed_out = False
        self._killed = False
        self._result: ExecResult | None = None
        self._exited = self.loop.create_future()
        self._done = asyncio.Event()
        self._output_called = False
        is_pty = pty_master is not None
        self._readers = [_Reader(self, stdout_fd, "stdout", is_pty)]
        if stderr_fd is not None:
            self._readers.append(_Reader(self, stderr_fd, "stderr", False))
        self._pidfd = os.pidfd_open(popen.pid)
        self.loop.add_reader(self._pidfd, self._on_pidfd)
        self._timer = (
            self.loop.call_later(timeout, self._on_timeout) if timeout is not None else None
        )
        self._drain_timer: asyncio.TimerHandle | None = None

    # -- properties ------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def finished(self) -> bool:
        return self._result is not None

    # -- exit ------------------------------------------------------------------

    def _on_pidfd(self) -> None:
        code = self.popen.poll()
        if code is None:
            return
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        if self._timer is not None:
            self._timer.cancel()
        duration_ms = int((time.monotonic() - self.started) * 1000)
        error: str | None = None
        if self._timed_out:
            error = "timed out: the command ran past its timeout and was killed"
        elif code == -signal.SIGKILL and self._oom_check is not None and self._oom_check():
            error = "killed: the box ran out of memory (its memory limit)"
        self._result = ExecResult(
            exit_code=code,
            duration_ms=duration_ms,
            error_message=error,
            timed_out=self._timed_out,
        )
        self._close_stdin_fd()
        for fd in self._keep_fds:
            os.close(fd)
        self._keep_fds = ()
        if self._pty_master is not None:
            os.close(self._pty_master)
            self._pty_master = None
        self._arm_drain()
        if not self._exited.done():
            self._exited.set_result(None)
        if self._on_exit is not None:
            self._on_exit(self, self._result)

    def _arm_drain(self) -> None:
        self._drain_timer = self.loop.call_later(DRAIN_QUIET_SECONDS, self._drain_tick)

    def _drain_tick(self) -> None:
        """After exit: end readers whose pipes stay quiet (held open by background jobs)."""
        now = time.monotonic()
        pending = False
        for reader in self._readers:
            if reader.done:
                continue
            if reader.paused or now - reader.last_read < DRAIN_QUIET_SECONDS:
                pending = True
            else:
                reader.finish()
        if pending:
            self._arm_drain()

    def _on_timeout(self) -> None:
        self._timed_out = True
        self.kill_tree()

    # -- control ---------------------------------------------------------------

    def _tree(self) -> list[int]:
        """This execution's process and all its descendants (host pids)."""
        found: list[int] = []
        todo = [self.popen.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return found

    def kill_tree(self) -> None:
        if self.finished:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        for _ in range(3):
            pids = self._tree()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if len(pids) <= 1:
                break

    async def signal(self, signum: int) -> None:
        if not isinstance(signum, int) or not 1 <= signum < signal.NSIG:
            raise InvalidArgumentError(
                f"signal {signum!r} is not a signal number; pass 1-{signal.NSIG - 1} "
                "(e.g. 15 for SIGTERM, 9 for SIGKILL)"
            )
        if self.finished:
            return
        if signum == signal.SIGKILL:
            await self.kill()
            return
        # nsenter does not forward signals: send it to the command it started.
        for _ in range(200):
            if self.finished:
                return
            children = self._children(self.popen.pid)
            if children:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
                return
            await asyncio.sleep(0.005)

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(c) for c in f.read().split()]
        except OSError:
            return []

    async def kill(self) -> None:
        self.kill_tree()

    async def resize(self, cols: int, rows: int) -> None:
        if not self._tty:
            raise InvalidStateError(
                "this execution has no TTY; start it with tty=true to resize it"
            )
        if self._pty_master is None:
            return
        with contextlib.suppress(OSError):
            fcntl.ioctl(self._pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # -- stdin -----------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_closed:
            raise InvalidStateError("stdin of this execution is closed")
        fd = self._pty_master if self._tty else self._stdin_fd
        if fd is None:
            return  # the process has exited
        async with self._stdin_lock:
            view = memoryview(data)
            while view:
                if self.finished or self._stdin_closed:
                    return  # nobody reads any more: the rest is discarded
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                except BlockingIOError:
                    await self._writable(fd)
                except (BrokenPipeError, OSError):
                    return

    async def _writable(self, fd: int) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self.loop.add_writer(fd, ready)
        try:
            await asyncio.wait([fut, self._exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.loop.remove_writer(fd)

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        if self._tty:
            if self._pty_master is not None:
                with contextlib.suppress(OSError):
                    os.write(self._pty_master, b"\x04")  # EOF at the start of a line
            self._stdin_closed = True
            return
        async with self._stdin_lock:
            self._close_stdin_fd()

    def _close_stdin_fd(self) -> None:
        self._stdin_closed = True
        if self._stdin_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._stdin_fd)
            self._stdin_fd = None

    # -- output ----------------------------------------------------------------

    def output(self) -> AsyncIterator[OutputChunk]:
        if self._output_called:
            raise InvalidStateError("output() of an execution can be read only once")
        self._output_called = True
        self.out.claimed = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[OutputChunk]:
        out = self.out
        try:
            while True:
                if out.chunks:
                    chunk = out.pop()
                    if out.queued < LOW_WATER:
                        for reader in self._readers:
                            reader.resume()
                    yield chunk
                    continue
                if all(r.done for r in self._readers):
                    return
                out.changed.clear()
                await out.changed.wait()
        finally:
            # Abandoned (or finished): never let unread output block the process.
            out.abandoned = True
            out.chunks.clear()
            out.queued = 0
            for reader in self._readers:
                reader.resume()

    async def wait(self) -> ExecResult:
        await asyncio.shield(self._exited)
        assert self._result is not None
        return self._result


def spawn(
    argv: list[str],
    *,
    env: dict[str, str],
    pass_fds: tuple[int, ...],
    exec_id: str,
    tty: bool,
    size: tuple[int, int] = (80, 24),
    pty: tuple[int, int] | None = None,
    timeout: float | None,
    on_exit: Callable[[BwrapExecution, ExecResult], None] | None = None,
    oom_check: Callable[[], bool] | None = None,
    keep_fds: tuple[int, ...] = (),
    starter: Callable[[Callable[[], subprocess.Popen[bytes]]], subprocess.Popen[bytes]]
    | None = None,
) -> BwrapExecution:
    """Start ``argv`` (the host-side command line that enters the box) as an execution.

    ``starter`` runs the ``Popen`` call (``seccomp.run_filtered``: on a thread
    whose children carry the box's seccomp filter).

    stdin is always a pipe or the pty, never the server's own stdin (the MCP
    stdio transport lives there). ``pty`` is a (master, slave) pair to use, taken
    over by the execution; without it a host pty is opened. ``keep_fds`` are
    closed when the process exits (the command line may name them by path).
    """
    start = starter or (lambda fn: fn())
    if tty:
        master, slave = pty if pty is not None else os.openpty()
        cols, rows = size
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            popen = start(
                lambda: subprocess.Popen(
                    argv,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=env,
                    pass_fds=pass_fds,
                    close_fds=True,
                )
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        control = os.dup(master)
        os.set_blocking(control, False)
        return BwrapExecution(
            exec_id,
            popen,
            stdout_fd=master,
            stderr_fd=None,
            stdin_fd=None,
            pty_master=control,
            timeout=timeout,
            on_exit=on_exit,
            oom_check=oom_check,
            keep_fds=keep_fds,
        )
    popen = start(
        lambda: subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=pass_fds,
            close_fds=True,
            start_new_session=True,
        )
    )
    assert popen.stdin and popen.stdout and popen.stderr
    # Take the raw fds: the Popen file objects must not buffer or close them.
    stdin_fd = os.dup(popen.stdin.fileno())
    stdout_fd = os.dup(popen.stdout.fileno())
    stderr_fd = os.dup(popen.stderr.fileno())
    for f in (popen.stdin, popen.stdout, popen.stderr):
        f.close()
    return BwrapExecution(
        exec_id,
        popen,
        stdout_fd=stdout_fd,
        stderr_fd=stderr_fd,
        stdin_fd=stdin_fd,
        pty_master=None,
        timeout=timeout,
        on_exit=on_exit,
        oom_check=oom_check,
        keep_fds=keep_fds,
    )
