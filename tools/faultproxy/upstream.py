"""A server under test as a child process: ``python -m tools.boxlite_server`` by default.

A separate process, so it can be killed with SIGKILL mid-exec (the crash a proxy
cannot fake) and so the client and the server do not share one event loop.
``ServerProcess`` starts it on a free port (over the bwrap runtime in ``home``,
when given), reads where it listens from its first line (``... listening on
URL``), and on exit stops it. After a kill, the boxes it started may still run:
``reap_boxes`` opens the bwrap runtime on the same home, whose restart recovery
kills them, and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from types import TracebackType

from tools.benchlib.procs import REPO, child_env

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, so no server outlives a killed run."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_LISTENING = re.compile(r"listening on (http://\S+)")


class ServerProcess:
    """``python -m <module> [--home HOME] <args>``, its stderr in a log file."""

    def __init__(
        self,
        home: Path | None,
        *args: str,
        module: str = "tools.boxlite_server",
        log_path: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        if home is None and log_path is None:
            raise ValueError("a server without a home needs a log_path")
        self.home = home
        self.args = list(args)
        self.module = module
        self.log_path = log_path or Path(f"{home}-server.log")
        self.start_timeout = start_timeout
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def start(self) -> str:
        home_args: list[str] = []
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            home_args = ["--home", str(self.home)]
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 (a local file, opened once)
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *home_args,
                *self.args,
                cwd=REPO,
                env=child_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        found = _LISTENING.search(line.decode(errors="replace"))
        if found is None:
            await self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.module} did not start; its log ends:\n{tail}")
        self.url = found.group(1)
        return self.url

    def kill9(self) -> None:
        """SIGKILL the server process: no cleanup, no goodbye, sockets reset by the kernel."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.killed = True

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        else:
            await process.wait()
        if self.killed and self.home is not None:
            await reap_boxes(self.home)

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def reap_boxes(home: Path) -> None:
    """Kill what a crashed server left running in ``home`` (the runtime's restart recovery)."""
    from boxlite_mcp.runtime.bwrap import BwrapRuntime

    runtime = BwrapRuntime(home=home)
    await runtime.aclose()
