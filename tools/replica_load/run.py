"""One load run: a cluster, the agents, the fault, the counts.

Calls that fail because a replica died under them (a transport error, or a
balancer answering 5xx) are retried on a fresh client: that is what a client of a
stateless protocol does. An ``exec_start`` retried may leave an earlier execution
running unseen; it prints its own id, so it is never mistaken for the one read.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from tools.benchlib.stats import percentile
from tools.replicas import Cluster
from tools.soaklib.calls import ToolFailed, ok

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


_TRANSIENT = (httpx.HTTPError, MCPError, OSError, anyio.BrokenResourceError)


def transient(exc: BaseException) -> bool:
    """A failure of the connection (a replica died under the call), alone or as every
    error of a task group, not of the call itself (a tool error is never retried)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(transient(inner) for inner in exc.exceptions)
    return isinstance(exc, _TRANSIENT)


def expected_output(agent: int, index: int, lines: int) -> str:
    return f"agent {agent} exec {index}\n" + "".join(f"{n}\n" for n in range(1, lines + 1))


class _Agent:
    def __init__(self, cluster: Cluster, number: int, workload: Workload, result: LoadResult):
        self.cluster = cluster
        self.number = number
        self.owner = OWNERS[number % len(OWNERS)]
        self.workload = workload
        self.result = result

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A tool call on a client of its own, retried while a replica is down.

        The 2026-07-28 protocol has no session, so a client costs no handshake: one
        per call is what lets any call land on any replica (and survive one dying)."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                async with self.cluster.client(self.owner, mode=MODERN) as client:
                    return await ok(client, tool, args)
            except Exception as exc:
                if not transient(exc) or time.monotonic() > deadline:
                    raise
                self.result.retried_calls += 1
                logger.debug("agent %d: %s failed (%r); retrying", self.number, tool, exc)
                await anyio.sleep(0.2)

    async def run(self) -> None:
        name = f"load-{self.number}"
        box_made = False
        try:
            try:
                await self.call("box_create", {"name": name})
            except ToolFailed as exc:
                if "taken" not in str(exc):  # a retried create that had worked
                    raise
            box_made = True
            for index in range(self.workload.execs):
                await self._exec(name, index)
        except Exception as exc:
            self.result.failures.append(f"agent {self.number}: {exc!r}"[:300])
        finally:
            if box_made:
                try:
                    await self.call("box_remove", {"box": name})
                except Exception as exc:
                    if "No box" not in str(exc):
                        self.result.failures.append(f"agent {self.number} remove: {exc!r}"[:300])

    async def _exec(self, box: str, index: int) -> None:
        lines = self.workload.lines
        command = f"echo 'agent {self.number} exec {index}'; seq 1 {lines}"
        started = time.monotonic()
        run = await self.call("exec_start", {"box": box, "command": command})
        out: list[str] = []
        cursor = 0
        while True:
            read = await self.call(
                "exec_read",
                {
                    "execution_id": run["execution_id"],
                    "cursor": cursor,
                    "wait_seconds": 10,
                    "until_exit": True,
                },
            )
            out.append(read["stdout"])
            cursor = read["next_cursor"]
            if not read["running"] and not read["has_more"]:
                break
        self.result.latencies.append(time.monotonic() - started)
        self.result.execs_done += 1
        if self.result.execs_done >= self.result.halfway_at:
            self.result.halfway.set()
        if "".join(out) != expected_output(self.number, index, lines) or read["exit_code"] != 0:
            self.result.lost_outputs += 1
            self.result.failures.append(
                f"agent {self.number} exec {index}: output differs "
                f"({len(''.join(out))} chars, exit {read['exit_code']}, error {read.get('error')})"
            )


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
