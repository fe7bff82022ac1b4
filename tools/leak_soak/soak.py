"""The leak soak: MCP clients create boxes and work, then vanish; after the TTL nothing is left.

Kinds of vanishing client (each client runs in a worker process, see ``worker``):

- ``stdio-killed``: each client starts its own ``python -m boxlite_mcp`` over stdio
  (its own home); the worker holding the pipes is SIGKILLed, so the server sees EOF
  and must clean up on its own;
- ``http-legacy-dropped``: a handshake-era streamable-HTTP session (``mcp-session-id``)
  whose client is SIGKILLed: connections reset, no DELETE ever comes;
- ``http-modern-dropped``: the same in the 2026-07-28 protocol (no session at all);
- ``stdio-silent`` and ``http-legacy-silent``: clients that stay connected and
  simply stop talking: only the idle TTL can remove their boxes.

The HTTP kinds share one server (a child process on its own home). After every
client has done its work, the killed kinds are killed and the silent ones left
alone; when the TTL, one reap interval and a margin have passed, four witnesses
must agree that no box of any kind remains: the box records in the homes, the
processes, mounts and cgroups on the host (``host.scan``), and a ``BwrapRuntime``
opened on each home once its server is gone (servers still running are SIGKILLed
for it: a runtime holds its home). That runtime removes what it lists; then nothing
at all may be left on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from tools.benchlib.procs import REPO, child_env
from tools.soaklib import host
from tools.soaklib.host import Leftovers, Proc
from tools.soaklib.server import McpHttpServer, settings_env
from tools.soaklib.table import render

Vanish = Literal["kill", "silent"]


@dataclass(frozen=True)
class KindSpec:
    name: str
    transport: Literal["stdio", "http"]
    mode: str  # the client's protocol mode: "legacy" (handshake era) or "auto" (2026-07-28)
    vanish: Vanish
    share: float  # of all clients
    what: str


KINDS: tuple[KindSpec, ...] = (
    KindSpec(
        "stdio-killed",
        "stdio",
        "legacy",
        "kill",
        0.25,
        "stdio client SIGKILLed: the server sees EOF",
    ),
    KindSpec(
        "http-legacy-dropped",
        "http",
        "legacy",
        "kill",
        0.25,
        "legacy HTTP session, client SIGKILLed, no DELETE",
    ),
    KindSpec(
        "http-modern-dropped", "http", "auto", "kill", 0.25, "2026-07-28 HTTP client SIGKILLed"
    ),
    KindSpec(
        "stdio-silent", "stdio", "legacy", "silent", 0.125, "stdio client connected but silent"
    ),
    KindSpec(
        "http-legacy-silent",
        "http",
        "legacy",
        "silent",
        0.125,
        "legacy HTTP session connected but silent",
    ),
)
PER_WORKER = {"stdio": 10, "http": 25}
READY_TIMEOUT = 600.0


def split(clients: int, kinds: tuple[KindSpec, ...] = KINDS) -> dict[str, int]:
    """Clients per kind, in proportion to each kind's share, summing to ``clients``."""
    counts = {k.name: int(clients * k.share) for k in kinds}
    for k in kinds:  # hand out the rounding remainder, first kinds first
        if sum(counts.values()) >= clients:
            break
        counts[k.name] += 1
    return counts


@dataclass
class KindResult:
    spec: KindSpec
    clients: int
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    boxes: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)  # boxes left running an exec_start job
    inflight: set[str] = field(default_factory=set)  # boxes with an exec_run in flight
    protocols: set[str] = field(default_factory=set)
    homes: list[Path] = field(default_factory=list)  # stdio: one home per client
    left: list[str] = field(default_factory=list)  # box records after the TTL
    runtime_left: list[str] = field(default_factory=list)  # what a BwrapRuntime lists
    processes: list[Proc] = field(default_factory=list)  # box processes after the TTL
    servers: list[Proc] = field(default_factory=list)  # stdio servers of killed clients alive
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    cleared_after: float | None = None  # seconds from vanish until no record was left

    @property
    def awaited(self) -> set[str]:
        """Boxes a client still connected is waiting on (an exec_run it awaits): not idle."""
        return self.inflight if self.spec.vanish == "silent" else set()

    def unexpected(self) -> dict[str, list[str]]:
        """What is left that should not be, by witness (empty lists: nothing)."""
        ok = self.awaited
        return {
            "boxes": [b for b in self.left if b not in ok],
            "runtime": [b for b in self.runtime_left if b not in ok],
            "processes": [f"{p.pid} {p.cmdline[:120]}" for p in self.processes if p.box not in ok],
            "servers": [f"{p.pid} {p.cmdline[:120]}" for p in self.servers],
            "mounts": [m for m in self.mounts if not any(f"/{b}/" in m for b in ok)],
            "cgroups": [c for c in self.cgroups if Path(c).name not in ok],
        }

    @property
    def leaked(self) -> bool:
        return any(self.unexpected().values())


@dataclass
class SoakResult:
    kinds: list[KindResult]
    ttl: float
    reap_interval: float
    margin: float
    at_the_end: Leftovers  # after the runtime witness removed what it listed
    seconds: float
    root: Path

    @property
    def passed(self) -> bool:
        every_client_worked = all(k.ok == k.clients for k in self.kinds)
        return (
            every_client_worked
            and not any(k.leaked for k in self.kinds)
            and self.at_the_end.clean
            and not self.at_the_end.servers
        )


class _Worker:
    """One ``python -m tools.leak_soak.worker`` process and what it reported."""

    def __init__(self, kind: KindResult, process: anyio.abc.Process) -> None:
        self.kind = kind
        self.process = process
        assert process.stdout is not None
        self.stream = BufferedByteReceiveStream(process.stdout)
        self.gone = False

    async def _line(self) -> dict[str, Any] | None:
        try:
            raw = await self.stream.receive_until(b"\n", 1 << 20)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            if not self.gone:
                self.gone = True
                self.kind.errors.append("a worker exited before it was ready")
            return None
        line: dict[str, Any] = json.loads(raw)
        return line

    async def until_connected(self) -> None:
        while (line := await self._line()) is not None and not line.get("connected"):
            pass

    async def go(self) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(b"go\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # it died before the go; until_ready reports it

    async def until_ready(self) -> None:
        while (line := await self._line()) is not None:
            if line.get("ready"):
                return
            if line.get("error"):
                self.kind.errors.append(str(line["error"]))
                continue
            self.kind.ok += 1
            self.kind.boxes.update(line["boxes"])
            self.kind.protocols.add(str(line.get("protocol")))
            if line.get("long"):
                self.kind.jobs.add(line["boxes"][0])
            if line.get("inflight"):
                self.kind.inflight.add(line["boxes"][0])

    def kill(self) -> None:
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)


async def _start_workers(
    kind: KindResult,
    root: Path,
    url: str,
    server_env: dict[str, str],
    first: int,
    log: Path,
    plan: list[str],
) -> list[_Worker]:
    spec = kind.spec
    per = PER_WORKER[spec.transport]
    workers = []
    home_root = root / spec.name
    home_root.mkdir(parents=True, exist_ok=True)
    for start in range(0, kind.clients, per):
        count = min(per, kind.clients - start)
        argv = [
            sys.executable,
            "-m",
            "tools.leak_soak.worker",
            "--transport",
            spec.transport,
            "--mode",
            spec.mode,
            "--clients",
            str(count),
            "--first",
            str(first + start),
            "--concurrency",
            "4" if spec.transport == "stdio" else "8",
            *plan,
        ]
        if spec.transport == "stdio":
            argv += ["--home-root", str(home_root), "--server-env", json.dumps(server_env)]
            kind.homes += [home_root / f"c{i}" for i in range(first + start, first + start + count)]
        else:
            argv += ["--url", url]
        with log.open("ab") as errors:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=REPO,
                env=child_env(),
            )
        workers.append(_Worker(kind, process))
    return workers


def _remaining(kind: KindResult, http_home: Path) -> list[str]:
    """Box records of this kind still in the homes."""
    if kind.spec.transport == "stdio":
        return [r for home in kind.homes for r in host.box_dirs(home)[0]]
    return [r for r in host.box_dirs(http_home)[0] if r in kind.boxes]


def _witness(kind: KindResult, http_home: Path, server_pid: int | None) -> None:
    """Fill in what the host shows of this kind after the TTL."""
    kind.left = _remaining(kind, http_home)
    homes = kind.homes if kind.spec.transport == "stdio" else []
    seen = host.scan(homes, kind.boxes, exclude=[server_pid] if server_pid else [])
    kind.processes = seen.processes
    kind.mounts = seen.mounts
    kind.cgroups = seen.cgroups
    if kind.spec.vanish == "kill":
        kind.servers = seen.servers  # a stdio server whose client died must have exited


async def run_soak(
    clients: int = 200,
    ttl: float = 10.0,
    reap_interval: float = 0.5,
    margin: float = 10.0,
    root: Path | None = None,
    long_every: int = 3,
    inflight_every: int = 3,
    kinds: tuple[KindSpec, ...] = KINDS,
) -> SoakResult:
    """Run the soak; ``root`` (a fresh temporary directory by default) holds homes and logs."""
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="boxlite-leak-soak-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_env(
        box_idle_ttl_seconds=ttl,
        reap_interval_seconds=reap_interval,
        max_boxes_per_owner=10_000,
        max_boxes_total=10_000,
        max_executions_kept=10_000,
    )
    counts = split(clients, kinds)
    results = [KindResult(spec, counts[spec.name]) for spec in kinds if counts[spec.name]]
    http_home = root / "http" / "home"
    (root / "http").mkdir(exist_ok=True)
    server = McpHttpServer(http_home, root / "http" / "server.log", env=settings)
    needs_http = any(k.spec.transport == "http" for k in results)
    workers: list[_Worker] = []
    try:
        if needs_http:
            await server.start()
        plan = ["--long-every", str(long_every), "--inflight-every", str(inflight_every)]
        first = 0  # client indexes are unique across kinds: names and homes stay apart
        for kind in results:
            workers += await _start_workers(
                kind, root, server.url, settings, first, root / "workers.log", plan
            )
            first += kind.clients
        # Every client connects (dozens of stdio servers start) before any works: a
        # client slower than the TTL between two of its own calls would lose its box.
        with anyio.fail_after(READY_TIMEOUT):
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.until_connected)
            for worker in workers:
                await worker.go()
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.until_ready)
        vanished = time.monotonic()
        for worker in workers:
            if worker.kind.spec.vanish == "kill":
                worker.kill()
        deadline = vanished + ttl + reap_interval + margin
        while time.monotonic() < deadline:
            now = time.monotonic()
            for kind in results:
                if kind.cleared_after is None and not _remaining(kind, http_home):
                    kind.cleared_after = now - vanished
            await anyio.sleep(0.25)
        server_pid = server.pid if needs_http else None
        for kind in results:
            _witness(kind, http_home, server_pid)
        # The runtime witness: a BwrapRuntime on each home. A server holds its home while
        # it runs, so those still running are SIGKILLed first: no clean-up of theirs, what
        # they held is what a restarted server would find.
        await _kill_servers(server, results)
        listed_http = await host.runtime_boxes(http_home, remove=True) if needs_http else []
        for kind in results:
            if kind.spec.transport == "http":
                kind.runtime_left = [b for b in listed_http if b in kind.boxes]
            else:
                for home in kind.homes:
                    if home.exists():
                        kind.runtime_left += await host.runtime_boxes(home, remove=True)
    finally:
        with anyio.CancelScope(shield=True):
            for worker in workers:
                worker.kill()
            for worker in workers:
                await worker.process.wait()
            await server.stop()
            after = await _at_the_end(results, http_home)
    return SoakResult(results, ttl, reap_interval, margin, after, time.monotonic() - began, root)


async def _kill_servers(server: McpHttpServer, results: list[KindResult]) -> None:
    """SIGKILL the HTTP server and every stdio server still running, and wait for them."""
    await server.stop(signal.SIGKILL)
    homes = [h for k in results if k.spec.transport == "stdio" for h in k.homes]
    for proc in host.scan(homes).servers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


async def _at_the_end(
    results: list[KindResult], http_home: Path, patience: float = 30.0
) -> Leftovers:
    """What is left on the host once the runtimes removed what they listed.

    Anything here is something no runtime knows about: an orphan process, mount or
    cgroup.
    """
    homes = [http_home, *(h for k in results for h in k.homes)]
    ids = {b for k in results for b in k.boxes}
    deadline = time.monotonic() + patience
    while True:
        seen = host.scan(homes, ids)
        if (seen.clean and not seen.servers) or time.monotonic() > deadline:
            return seen
        await anyio.sleep(0.25)


def cleanup(result: SoakResult) -> None:
    shutil.rmtree(result.root, ignore_errors=True)


def report(result: SoakResult, command: str) -> str:
    """The Markdown table and the lines around it."""
    header = (
        "kind",
        "clients (ok)",
        "boxes created",
        "jobs / calls in flight",
        "boxes left after TTL",
        "runtime lists",
        "processes left",
        "mounts / cgroups left",
        "cleared after",
    )

    def left(count: int, awaited: int, wrong: int) -> str:
        text = str(count) + (f" ({awaited} awaited)" if awaited else "")
        return f"**{text}**" if wrong else text

    rows = []
    for k in result.kinds:
        bad = k.unexpected()
        awaited = k.awaited
        cleared = f"{k.cleared_after:.1f} s" if k.cleared_after is not None else "never"
        rows.append(
            (
                f"{k.spec.name}: {k.spec.what}",
                f"{k.clients} ({k.ok})",
                str(len(k.boxes)),
                f"{len(k.jobs)} / {len(k.inflight)}",
                left(len(k.left), len(set(k.left) & awaited), len(bad["boxes"])),
                left(len(k.runtime_left), len(set(k.runtime_left) & awaited), len(bad["runtime"])),
                left(
                    len(k.processes) + len(k.servers),
                    sum(p.box in awaited for p in k.processes),
                    len(bad["processes"]) + len(bad["servers"]),
                ),
                left(len(k.mounts), len(k.mounts) - len(bad["mounts"]), len(bad["mounts"]))
                + " / "
                + left(len(k.cgroups), len(k.cgroups) - len(bad["cgroups"]), len(bad["cgroups"])),
                cleared,
            )
        )
    kinds = result.kinds
    bad_all = [k.unexpected() for k in kinds]

    def total(what: str) -> int:
        return sum(len(b[what]) for b in bad_all)

    rows.append(
        (
            "**total**",
            f"{sum(k.clients for k in kinds)} ({sum(k.ok for k in kinds)})",
            str(sum(len(k.boxes) for k in kinds)),
            f"{sum(len(k.jobs) for k in kinds)} / {sum(len(k.inflight) for k in kinds)}",
            left(
                sum(len(k.left) for k in kinds),
                sum(len(set(k.left) & k.awaited) for k in kinds),
                total("boxes"),
            ),
            left(
                sum(len(k.runtime_left) for k in kinds),
                sum(len(set(k.runtime_left) & k.awaited) for k in kinds),
                total("runtime"),
            ),
            left(
                sum(len(k.processes) + len(k.servers) for k in kinds),
                sum(sum(p.box in k.awaited for p in k.processes) for k in kinds),
                total("processes") + total("servers"),
            ),
            left(
                sum(len(k.mounts) for k in kinds),
                sum(len(k.mounts) for k in kinds) - total("mounts"),
                total("mounts"),
            )
            + " / "
            + left(
                sum(len(k.cgroups) for k in kinds),
                sum(len(k.cgroups) for k in kinds) - total("cgroups"),
                total("cgroups"),
            ),
            "",
        )
    )
    after = result.at_the_end
    lines = [
        f"### Leak soak (`{command}`, {result.seconds:.0f} s)",
        "",
        f"- idle TTL {result.ttl:g} s, reap interval {result.reap_interval:g} s; checked "
        f"{result.ttl + result.reap_interval + result.margin:g} s after the clients vanished "
        f"(TTL + reap interval + {result.margin:g} s margin)",
        "- jobs / calls in flight: boxes where the client left an `exec_start` of `sleep 600` "
        "running / boxes with an `exec_run` of it in flight when the client vanished",
        "- awaited: left because a client that is still connected waits on a call there "
        "(not idle, so not a leak); anything else left is in bold",
        f"- protocols seen: {', '.join(sorted({p for k in result.kinds for p in k.protocols}))}",
        "",
        render(header, rows),
        "",
        "At the end (servers SIGKILLed, then a BwrapRuntime on each home listed and removed "
        f"what they left): {after.summary()}.",
    ]
    errors = [f"{k.spec.name}: {e}" for k in result.kinds for e in k.errors]
    if errors:
        lines += ["", f"Client errors ({len(errors)}):", *[f"- {e}" for e in errors[:20]]]
    for k in result.kinds:
        bad = {what: items for what, items in k.unexpected().items() if items}
        if not bad:
            continue
        jobs = len(set(bad.get("boxes", [])) & k.jobs)
        calls = len(set(bad.get("boxes", [])) & k.inflight)
        lines += [
            "",
            f"Left by {k.spec.name} ({jobs} with a job, {calls} with a call in "
            "flight at vanish): " + ", ".join(f"{len(v)} {w}" for w, v in bad.items()),
        ]
        lines += [
            f"  - process {p[:160]}"
            for p in [*bad.get("servers", []), *bad.get("processes", [])][:5]
        ]
    lines += ["", "PASSED: nothing left" if result.passed else "FAILED: see above"]
    return "\n".join(lines)


def _flag(n: int) -> str:
    return str(n) if n == 0 else f"**{n}**"
