"""``python -m boxlite_mcp`` as a child process: the server exactly as an operator runs it.

Streamable HTTP on a free loopback port (``--port 0``) over the bwrap runtime in its
own home; settings come from ``BOXLITE_MCP_*`` variables, bearer tokens from
``BOXLITE_MCP_AUTH_TOKENS``. The server logs to stderr only, so its log file is
where the URL it listens on is read from (``serving MCP (...) on URL``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc

from tools.benchlib.procs import REPO, child_env

_SERVING = re.compile(r"serving MCP \([^)]*\) on (http://\S+)")
START_TIMEOUT = 30.0


def settings_env(**settings: object) -> dict[str, str]:
    """``BOXLITE_MCP_<NAME>`` variables for server settings (None: left out)."""
    return {f"BOXLITE_MCP_{k.upper()}": str(v) for k, v in settings.items() if v is not None}


def stdio_server_args(home: Path, log_level: str = "info") -> list[str]:
    """The arguments that start a stdio server on ``home`` (after ``sys.executable``)."""
    return [
        "-m",
        "boxlite_mcp",
        "--runtime",
        "bwrap",
        "--home",
        str(home),
        "--log-level",
        log_level,
    ]


class McpHttpServer:
    """``python -m boxlite_mcp --transport streamable-http`` on a free port."""

    def __init__(
        self,
        home: Path,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        port: int = 0,
    ) -> None:
        self.home = home
        # 0: a free port each start; a fixed one lets a restarted server keep its
        # address (a load balancer's configuration names it).
        self.port = port
        self.log_path = log_path
        self.env = env or {}
        self.args = args or []
        self.url = ""
        self.process: anyio.abc.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        # A restart reads only what this run logs (the log file is appended to).
        logged_before = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            sys.executable,
            "-m",
            "boxlite_mcp",
            "--transport",
            "streamable-http",
            "--port",
            str(self.port),
            "--runtime",
            "bwrap",
            "--home",
            str(self.home),
            "--log-level",
            "info",
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            self.process = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO,
                env=child_env(**self.env),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = _SERVING.search(
                self.log_path.read_bytes()[logged_before:].decode(errors="replace")
            )
            if found is not None:
                self.url = found.group(1)
                return self.url
            if self.process.returncode is not None:
                break
            await anyio.sleep(0.02)
        await self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"boxlite-mcp did not start; its log ends:\n{tail}")

    async def stop(
        self, sig: signal.Signals = signal.SIGTERM, patience: float = 30.0
    ) -> int | None:
        """Stop it (SIGTERM: graceful, the lifespan removes scratch boxes); its exit status."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(sig)
            with anyio.move_on_after(patience):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        return process.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def __aenter__(self) -> McpHttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.stop()
