"""Benchmark the bwrap runtime against plain host subprocesses, side by side.

Measures, in one run:

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

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest


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


async def main(args: argparse.Namespace) -> None:
    iterations = 5 if args.quick else args.iterations
    creates = 3 if args.quick else max(5, args.iterations // 20)
    with tempfile.TemporaryDirectory(prefix="bench-bwrap-") as tmp:
        runtime = BwrapRuntime(home=Path(args.home) if args.home else Path(tmp))
        try:
            request = ExecRequest(command="true")

            async def exec_true(box: object) -> None:
                execution = await box.exec(request)  # type: ignore[attr-defined]
                await execution.close_stdin()
                async for _ in execution.output():
                    pass
                await execution.wait()

            async def create_then_exec() -> float:
                start = time.perf_counter()
                box = await runtime.create(BoxOptions())
                await exec_true(box)
                elapsed = (time.perf_counter() - start) * 1000
                await runtime.remove(box.id, force=True)  # not timed
                return elapsed

            await host_true()  # warm up both sides
            await create_then_exec()
            box = await runtime.create(BoxOptions(name="bench"))
            await exec_true(box)

            create_ms = [await create_then_exec() for _ in range(creates)]
            host_spawn_ms = await timed(host_true, creates)
            exec_ms = await timed(lambda: exec_true(box), iterations)
            host_ms = await timed(host_true, iterations)
        finally:
            for info in await runtime.list():
                await runtime.remove(info.id, force=True)
            await runtime.aclose()

    def row(name: str, ours: list[float], host: list[float]) -> str:
        a, b = statistics.median(ours), statistics.median(host)
        return f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f} | {len(ours)} |"

    print("| measure (median ms) | bwrap | host subprocess | ratio | runs |")
    print("|---|---:|---:|---:|---:|")
    print(row("create box -> first exec of `true` done", create_ms, host_spawn_ms))
    print(row("exec round trip of `true`", exec_ms, host_ms))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--iterations", type=int, default=200, help="exec round trips")
    parser.add_argument("--home", help="runtime home (default: a temporary directory)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
