"""Execution sessions: a running command, its output backlog and its outcome.

A pump task reads the runtime's output into the backlog from the moment the
execution starts, then records the result; the status turns from ``running``
only once every byte is in the backlog, so a client that sees ``completed`` can
still fetch all the output. Finished sessions are kept for
``completed_retention_seconds`` (at most ``max_executions`` sessions, and at
most ``finished_output_bytes`` of their output together), then evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from boxlite_mcp.runtime.base import Execution
from boxlite_mcp.runtime.errors import BoxliteError, NotFoundError

from .backlog import STDERR, STDOUT, OutputBacklog
from .config import ServerConfig

log = logging.getLogger("boxlite_server.sessions")


class ExecSession:
    def __init__(
        self,
        session_id: str,
        box_id: str,
        box_name: str | None,
        execution: Execution,
        tty: bool,
        config: ServerConfig,
    ) -> None:
        self.id = session_id
        self.box_id = box_id
        self.box_name = box_name
        self.execution = execution
        self.tty = tty
        self.started_at = datetime.now(UTC)
        self._t0 = time.monotonic()
        self.backlog = OutputBacklog(config.backlog_bytes, config.reconnect_grace_seconds)
        self.status = "running"
        self.exit_code: int | None = None
        self.duration_ms: int | None = None
        self.error_message: str | None = None
        self.kill_requested = False
        self.attached = False
        self.evicted = False
        self.finished_at: float | None = None
        self.done = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._pump(), name=f"exec-pump-{session_id}"
        )

    def belongs_to(self, box: str) -> bool:
        return box in (self.box_id, self.box_name)

    async def _pump(self) -> None:
        try:
            async for chunk in self.execution.output():
                await self.backlog.append(
                    STDOUT if chunk.stream == "stdout" else STDERR, chunk.data
                )
        except BoxliteError as exc:
            self.error_message = exc.message
        except Exception as exc:
            log.exception("output of execution %s failed", self.id)
            self.error_message = f"output stream failed: {exc}"
        try:
            result = await self.execution.wait()
        except BoxliteError as exc:
            self.exit_code = -1
            self.error_message = self.error_message or exc.message
            self.status = "killed"
        except Exception as exc:
            log.exception("execution %s failed", self.id)
            self.exit_code = -1
            self.error_message = self.error_message or f"execution failed: {exc}"
            self.status = "killed"
        else:
            self.exit_code = result.exit_code
            self.error_message = result.error_message or self.error_message
            if result.timed_out:
                self.status = "timed_out"
            elif self.kill_requested or result.exit_code < 0:
                self.status = "killed"
            else:
                self.status = "completed"
            if result.duration_ms is not None:
                self.duration_ms = result.duration_ms
        if self.duration_ms is None:
            self.duration_ms = int((time.monotonic() - self._t0) * 1000)
        self.finished_at = time.monotonic()
        self.backlog.close()
        self.done.set()

    def info(self) -> dict[str, object]:
        """The ExecutionInfo body."""
        return {
            "execution_id": self.id,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": self.started_at.isoformat().replace("+00:00", "Z"),
            "duration_ms": self.duration_ms if self.status != "running" else None,
            "error_message": self.error_message,
        }

    def exit_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "exit_code": self.exit_code if self.exit_code is not None else -1,
            "duration_ms": self.duration_ms or 0,
        }
        return payload

    async def kill(self) -> None:
        self.kill_requested = True
        await self.execution.kill()

    async def aclose(self) -> None:
        """Kill the process if it still runs; streams still open see the end."""
        if not self.done.is_set():
            with contextlib.suppress(BoxliteError):
                await self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.done.wait()), 2.0)
        if not self.done.is_set():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self.status, self.exit_code = "killed", self.exit_code or -9
            self.error_message = "the server shut down"
            self.backlog.close()
            self.done.set()


class ExecRegistry:
    """Sessions by id, with eviction of old finished ones."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._sessions: dict[str, ExecSession] = {}

    def add(self, session: ExecSession) -> None:
        self._gc()
        self._sessions[session.id] = session

    def get(self, box: str, session_id: str, *, evicted: bool = False) -> ExecSession:
        """The session; a killed-and-evicted one only when ``evicted`` (attach).

        Only this session's retention is checked here; the full sweep runs when a
        session is added. Sweeping on every read walked and sorted up to
        ``max_executions`` sessions per request, which made the server slower the
        longer a benchmark ran (``docs/benchmarks.md``).
        """
        session = self._sessions.get(session_id)
        if session is not None and self._expired(session, time.monotonic()):
            del self._sessions[session_id]
            session = None
        if session is None or not session.belongs_to(box) or (session.evicted and not evicted):
            raise NotFoundError(f"execution not found: {session_id} in box {box}")
        return session

    def evict(self, session_id: str) -> None:
        """Hide a killed session from status and control routes (0.10 DELETE).

        It stays attachable until the usual retention ends, so a client whose
        attach raced its own DELETE still gets the exit frame, not a 404.
        """
        session = self._sessions.get(session_id)
        if session is not None:
            session.evicted = True

    def running(self) -> list[ExecSession]:
        return [s for s in self._sessions.values() if not s.done.is_set()]

    def _expired(self, session: ExecSession, now: float) -> bool:
        finished = session.finished_at
        return finished is not None and now - finished > self._config.completed_retention_seconds

    def _gc(self) -> None:
        now = time.monotonic()
        for session in [s for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[session.id]
        excess = len(self._sessions) - self._config.max_executions + 1
        finished = [s for s in self._sessions.values() if s.finished_at is not None]
        held = sum(s.backlog.retained for s in finished)
        if excess <= 0 and held <= self._config.finished_output_bytes:
            return
        for session in sorted(finished, key=lambda s: s.finished_at or 0.0):
            if excess <= 0 and held <= self._config.finished_output_bytes:
                break
            del self._sessions[session.id]
            excess -= 1
            held -= session.backlog.retained

    async def aclose(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.aclose()
