"""Direct runtime calls (no MCP, no HTTP) and plain host subprocesses, for comparison.

The host-subprocess baseline and the simple timer come from ``tools/bench/runtime.py``
(the bwrap runtime's own benchmark), so both commands measure the same thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tools.bench.runtime import host_true, timed

__all__ = [
    "concurrently",
    "create_to_first_exec",
    "first_output",
    "flood",
    "host_true",
    "remove_all",
    "run_exec",
    "start_boxes",
    "timed",
]

TRUE = ExecRequest(command="true")
#: Prints the box's CLOCK_REALTIME in nanoseconds (taken just before the write), then
#: stays alive a little so that the output is not merged with the exit.
STAMP = ExecRequest(command="sh", args=["-c", "date +%s%N; sleep 0.05"])


async def run_exec(box: Box, request: ExecRequest = TRUE) -> int:
    """One exec the way the MCP server runs it: start, close stdin, read all, wait.

    Returns the number of output bytes; raises when the command failed.
    """
    execution = await box.exec(request)
    await execution.close_stdin()
    total = 0
    async for chunk in execution.output():
        total += len(chunk.data)
    result = await execution.wait()
    if result.exit_code != 0:
        raise RuntimeError(f"{request.argv} exited with {result.exit_code}")
    return total


async def create_to_first_exec(runtime: Runtime) -> float:
    """Milliseconds from create to the first exec's result; removal is not timed."""
    start = time.perf_counter()
    box = await runtime.create(BoxOptions())
    await run_exec(box)
    taken = (time.perf_counter() - start) * 1000
    await runtime.remove(box.id, force=True)
    return taken


async def first_output(box: Box) -> float:
    """Milliseconds from the box writing its first byte to this process reading it.

    Sound because a bwrap box shares the host kernel: ``date`` in the box and
    ``time.time_ns()`` here read the same CLOCK_REALTIME.
    """
    execution = await box.exec(STAMP)
    await execution.close_stdin()
    latency: float | None = None
    async for chunk in execution.output():
        if latency is None:
            received = time.time_ns()
            latency = (received - int(chunk.data.split(b"\n", 1)[0])) / 1e6
    await execution.wait()
    if latency is None:
        raise RuntimeError("the stamp command printed nothing")
    return latency


async def flood(box: Box, nbytes: int) -> float:
    """MB/s of ``nbytes`` of stdout read straight from the runtime."""
    request = ExecRequest(command="sh", args=["-c", f"head -c {nbytes} /dev/zero | tr '\\0' a"])
    start = time.perf_counter()
    got = await run_exec(box, request)
    seconds = time.perf_counter() - start
    if got != nbytes:
        raise RuntimeError(f"read {got} of {nbytes} bytes")
    return nbytes / seconds / 1e6


async def concurrently(
    jobs: int, concurrency: int, job: Callable[[int], Awaitable[object]]
) -> tuple[list[float], float]:
    """Run ``job(i)`` for i in range(jobs), at most ``concurrency`` at a time.

    Returns each job's latency (ms) and the wall time of all (s).
    """
    latencies: list[float] = []
    next_job = 0

    async def worker() -> None:
        nonlocal next_job
        while next_job < jobs:
            i = next_job
            next_job += 1
            start = time.perf_counter()
            await job(i)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, jobs)):
            group.create_task(worker())
    return latencies, time.perf_counter() - start


async def start_boxes(runtime: Runtime, count: int, prefix: str, concurrency: int = 8) -> list[Box]:
    """``count`` running boxes (each has run ``true`` once), created a few at a time."""
    boxes: list[Box | None] = [None] * count

    async def make(i: int) -> None:
        box = await runtime.create(BoxOptions(name=f"{prefix}-{i}"))
        await run_exec(box)
        boxes[i] = box

    await concurrently(count, concurrency, make)
    return [box for box in boxes if box is not None]


async def remove_all(runtime: Runtime) -> None:
    for info in await runtime.list():
        try:
            await runtime.remove(info.id, force=True)
        except Exception:  # best effort: the home is a temporary directory anyway
            pass
