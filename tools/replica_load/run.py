"""One load run: a cluster, the agents, the fault, the counts.

Each agent uses one client; when a replica dies under a call (a transport error,
or the balancer answering 5xx), it opens a new one and goes on from where it was
(the same execution id and cursor): what a client of the sessionless protocol does.
An ``exec_start`` retried may leave an earlier execution running unseen; each
prints its own marker, so it is never mistaken for the one read.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from tools.bench.stats import percentile
from tools.replicas import Cluster
from tools.soaklib.calls import ToolFailed, ok

logger = logging.getLogger(__name__)


#: Owners the agents are spread over (each owner's box limit stays well clear).
OWNERS = tuple(f"owner{i}" for i in range(10))
#: The sessionless protocol, adopted directly (no discovery round trip per client).
MODERN = "2026-07-28"
#: Transient failures while a replica is down are retried this long.
RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Workload:
    agents: int = 100
    execs: int = 20
    concurrency: int = 20
    #: Lines each exec prints after its own marker: enough to cross several reads.
    lines: int = 200


@dataclass
class LoadResult:
    replicas: int
    killed: bool
    execs_done: int = 0
    lost_outputs: int = 0
    leaked_boxes: int = 0
    retried_calls: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds per exec
    wall_seconds: float = 0.0
    #: Set once half the execs are done (when the fault strikes).
    halfway: anyio.Event = field(default_factory=anyio.Event)
    halfway_at: int = 0

    @property
    def throughput(self) -> float:
        return self.execs_done / self.wall_seconds if self.wall_seconds else math.nan

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000 if self.latencies else math.nan


#: The MCP SDK's client speaks HTTP through ``httpx2`` (its own copy of httpx).
_TRANSIENT = (
    httpx2.HTTPError,
    MCPError,
    OSError,
    anyio.BrokenResourceError,
)


def transient(exc: BaseException) -> bool:
    """A failure of the connection (a replica died under the call), alone or as every
    error of a task group, not of the call itself (a tool error is never retried)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(transient(inner) for inner in exc.exceptions)
    return isinstance(exc, _TRANSIENT)


def _describe(exc: BaseException) -> str:
    """An error as a failure line: a task group's errors by type and message."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def expected_output(agent: int, index: int, lines: int) -> str:
    return f"agent {agent} exec {index}\n" + "".join(f"{n}\n" for n in range(1, lines + 1))


class _Agent:
    def __init__(self, cluster: Cluster, number: int, workload: Workload, result: LoadResult):
        self.cluster = cluster
        self.number = number
        self.owner = OWNERS[number % len(OWNERS)]
        self.workload = workload
        self.result = result

    async def run(self) -> None:
        """The agent's work on one client; a transient failure (a replica died under a
        call) opens a new client and goes on from where the agent was."""
        progress = _Progress()
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            done_before = self.result.execs_done
            try:
                async with self.cluster.client(self.owner, mode=MODERN) as client:
                    await self._work(client, progress)
                return
            except Exception as exc:
                if progress.finished and transient(exc):
                    return  # closing the client after the work: nothing was lost
                if self.result.execs_done > done_before:
                    deadline = time.monotonic() + RETRY_SECONDS  # it was progressing
                if not transient(exc) or time.monotonic() > deadline:
                    self.result.failures.append(f"agent {self.number}: {_describe(exc)}"[:300])
                    if progress.box_made and not progress.finished:
                        progress.index = self.workload.execs  # give up: just remove the box
                        deadline = time.monotonic() + RETRY_SECONDS
                        continue
                    return
                self.result.retried_calls += 1
                logger.debug("agent %d: %r; a new client", self.number, exc)
                await anyio.sleep(0.2)

    async def _work(self, client: Client, progress: _Progress) -> None:
        name = f"load-{self.number}"
        if not progress.box_made:
            try:
                await ok(client, "box_create", {"name": name})
            except ToolFailed as exc:
                if "taken" not in str(exc):  # a retried create that had worked
                    raise
            progress.box_made = True
        while progress.index < self.workload.execs:
            await self._exec(client, name, progress)
        try:
            await ok(client, "box_remove", {"box": name})
        except ToolFailed as exc:
            if "No box" not in str(exc):  # a retried remove that had worked
                raise
        progress.finished = True

    async def _exec(self, client: Client, box: str, progress: _Progress) -> None:
        lines, index = self.workload.lines, progress.index
        if progress.execution_id is None:
            command = f"echo 'agent {self.number} exec {index}'; seq 1 {lines}"
            progress.started = time.monotonic()
            run = await ok(client, "exec_start", {"box": box, "command": command})
            progress.execution_id, progress.cursor, progress.out = run["execution_id"], 0, []
        while True:
            read = await ok(
                client,
                "exec_read",
                {
                    "execution_id": progress.execution_id,
                    "cursor": progress.cursor,
                    "wait_seconds": 10,
                    "until_exit": True,
                },
            )
            progress.out.append(read["stdout"])
            progress.cursor = read["next_cursor"]
            if not read["running"] and not read["has_more"]:
                break
        self.result.latencies.append(time.monotonic() - progress.started)
        self.result.execs_done += 1
        if self.result.execs_done >= self.result.halfway_at:
            self.result.halfway.set()
        out = "".join(progress.out)
        if out != expected_output(self.number, index, lines) or read["exit_code"] != 0:
            self.result.lost_outputs += 1
            self.result.failures.append(
                f"agent {self.number} exec {index}: output differs "
                f"({len(out)} chars, exit {read['exit_code']}, error {read.get('error')})"
            )
        progress.index += 1
        progress.execution_id = None


@dataclass
class _Progress:
    """How far an agent got, so that a new client goes on from there."""

    box_made: bool = False
    index: int = 0
    execution_id: str | None = None
    cursor: int = 0
    out: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: bool = False


async def _leaked(cluster: Cluster) -> int:
    settings = RestSettings(url=cluster.rest_url, api_key=SecretStr(cluster.api_key))
    async with RestRuntime(settings) as runtime:
        return len([b for b in await runtime.list() if (b.name or "").startswith("load-")])


async def run_load(
    work: Path,
    workload: Workload,
    *,
    replicas: int,
    kill: bool,
    progress: Callable[[str], object] = lambda _: None,
) -> LoadResult:
    """The workload on a fresh cluster of ``replicas``; ``kill``: SIGKILL one replica
    once half the execs are done and restart it."""
    result = LoadResult(
        replicas=replicas, killed=kill, halfway_at=workload.agents * workload.execs // 2
    )
    async with Cluster(
        work, replicas, subjects=OWNERS, settings={"exec_lease_seconds": 3}
    ) as cluster:
        limiter = anyio.Semaphore(workload.concurrency)

        async def agent(number: int) -> None:
            async with limiter:
                await _Agent(cluster, number, workload, result).run()

        async def fault() -> None:
            await result.halfway.wait()
            victim = replicas - 1
            progress(f"killing replica {victim + 1} after {result.execs_done} execs")
            await cluster.kill(victim)
            await anyio.sleep(2)
            await cluster.restart(victim)
            progress(f"replica {victim + 1} restarted")

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            if kill:
                group.start_soon(fault)
            async with anyio.create_task_group() as agents:
                for number in range(workload.agents):
                    agents.start_soon(agent, number)
            group.cancel_scope.cancel()
        result.wall_seconds = time.monotonic() - started
        # Removal is synchronous: what is left now is leaked.
        result.leaked_boxes = await _leaked(cluster)
        if result.failures:
            logger.warning("replica logs:\n%s", cluster.logs())
    return result
