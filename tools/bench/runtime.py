"""Direct runtime calls (no MCP, no HTTP) and plain host subprocesses, for comparison.

The benchmark's rows use these; run alone, this module compares the bwrap runtime
with plain host subprocesses side by side:

- box create -> first exec finished (``true``), versus spawning one host process;
- the exec round trip of ``true`` in a running box (exec, read output, wait),
  median over many runs, versus ``asyncio.create_subprocess_exec("true")``;

and prints a Markdown table with the ratios. ``--quick`` runs a few iterations.

    python -m tools.bench.runtime [--quick] [--iterations N] [--home DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tools.soaklib.table import render as markdown_table


async def host_true() -> None:
    proc = await asyncio.create_subprocess_exec(
        "true",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await proc.communicate()


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


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


async def exec_load(
    runtime: Runtime, boxes: int, jobs: int, concurrency: int, prefix: str
) -> tuple[list[float], float]:
    """``jobs`` execs of ``true`` over ``boxes`` new boxes, ``concurrency`` at a time.

    Returns each exec's latency (ms) and the wall time of all (s); every box of
    ``runtime`` is removed afterwards, whatever happened.
    """
    try:
        started = await start_boxes(runtime, boxes, prefix)
        return await concurrently(jobs, concurrency, lambda i: run_exec(started[i % len(started)]))
    finally:
        await remove_all(runtime)


async def remove_all(runtime: Runtime) -> None:
    for info in await runtime.list():
        try:
            await runtime.remove(info.id, force=True)
        except Exception:  # best effort: the home is a temporary directory anyway
            pass


async def main(args: argparse.Namespace) -> None:
    iterations = 5 if args.quick else args.iterations
    creates = 3 if args.quick else max(5, args.iterations // 20)
    with tempfile.TemporaryDirectory(prefix="bench-bwrap-") as tmp:
        runtime = BwrapRuntime(home=Path(args.home) if args.home else Path(tmp))
        try:
            await host_true()  # warm up both sides
            await create_to_first_exec(runtime)
            box = await runtime.create(BoxOptions(name="bench"))
            await run_exec(box)

            create_ms = [await create_to_first_exec(runtime) for _ in range(creates)]
            host_spawn_ms = await timed(host_true, creates)
            exec_ms = await timed(lambda: run_exec(box), iterations)
            host_ms = await timed(host_true, iterations)
        finally:
            await remove_all(runtime)
            await runtime.aclose()

    def row(name: str, ours: list[float], host: list[float]) -> tuple[str, ...]:
        a, b = statistics.median(ours), statistics.median(host)
        return (name, f"{a:.2f}", f"{b:.2f}", f"{a / b:.2f}", str(len(ours)))

    header = ("measure (median ms)", "bwrap", "host subprocess", "ratio", "runs")
    rows = [
        row("create box -> first exec of `true` done", create_ms, host_spawn_ms),
        row("exec round trip of `true`", exec_ms, host_ms),
    ]
    print(markdown_table(header, rows, right={1, 2, 3, 4}))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--iterations", type=int, default=200, help="exec round trips")
    parser.add_argument("--home", help="runtime home (default: a temporary directory)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
