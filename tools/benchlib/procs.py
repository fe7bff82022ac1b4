"""Processes the benchmark starts and watches: the REST test server, RSS, process trees."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

#: The repository root: subprocesses import ``tools.*`` from here.
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port free right now, for a child server told where to listen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without BOXLITE_* settings (they would steer the servers), plus
    the repository on PYTHONPATH so ``python -m tools.…`` works from anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXLITE")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
    return {**env, **extra}


@dataclass(frozen=True)
class RestServer:
    url: str
    pid: int


@contextlib.asynccontextmanager
async def rest_server(home: Path, api_key: str, log: Path) -> AsyncIterator[RestServer]:
    """``python -m tools.boxlite_server`` (both API generations, bwrap) in its own process.

    Its own process, so that it never shares an event loop or the GIL with the
    clients being measured, as a real BoxLite server would not.
    """
    # Here, not at the top: the fault proxy's ServerProcess takes child_env from this module.
    from tools.faultproxy.upstream import ServerProcess

    args = ("--api-key", api_key, "--generation", "both", "--log-level", "warning")
    async with ServerProcess(home, *args, log_path=log, start_timeout=START_TIMEOUT) as server:
        yield RestServer(server.url, server.pid)


def rss_kib(pid: int) -> int:
    """Resident set size of one process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tree_rss_kib(pids: set[int]) -> int:
    """Summed RSS of ``pids`` that still exist (shared pages count once per process)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, RuntimeError):
            total += rss_kib(pid)
    return total


def find_child(marker: str) -> int:
    """The pid of a descendant of this process whose command line holds ``marker``."""
    for pid in sorted(descendants(os.getpid())):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmdline:
            return pid
    raise RuntimeError(f"no child process with {marker!r} in its command line")
