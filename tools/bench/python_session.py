"""A Python session cell vs a fresh interpreter per command, on the same box.

DESIGN.md's goal: ``python_run`` of ``1+1`` at least 5x faster than ``exec_run`` of
``python3 -c "1+1"``. Both are measured at the engine level here (``PythonSessions.run``
vs the exec the MCP server runs for ``exec_run``), taking turns so drift hits both
alike; the MCP layer adds the same per-call overhead to each side.

    python -m tools.bench.python_session [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from boxlite_mcp.sessions.python import PythonSessions
from tools.bench.runtime import run_exec
from tools.bench.stats import Summary, fmt_ratio, ratio

PYTHON_C = ExecRequest(command="python3", args=["-c", "1+1"])


async def session_vs_exec(box: Box, samples: int) -> tuple[list[float], list[float], float]:
    """Milliseconds per ``1+1`` cell and per ``python3 -c``, and the session's start (ms)."""
    sessions = PythonSessions()
    try:
        start = time.perf_counter()
        first = await sessions.run(box, "1+1")
        started_ms = (time.perf_counter() - start) * 1000
        if first.result != "2":
            raise RuntimeError(f"python_run of 1+1 gave {first.result!r}: {first.error}")
        await run_exec(box, PYTHON_C)  # warm the page cache for python3 too
        cells: list[float] = []
        execs: list[float] = []
        for _ in range(samples):
            start = time.perf_counter()
            result = await sessions.run(box, "1+1")
            cells.append((time.perf_counter() - start) * 1000)
            if result.result != "2":
                raise RuntimeError(f"python_run of 1+1 gave {result.result!r}")
            start = time.perf_counter()
            await run_exec(box, PYTHON_C)
            execs.append((time.perf_counter() - start) * 1000)
        return cells, execs, started_ms
    finally:
        await sessions.aclose()


async def main(samples: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-python-") as home:
        runtime = BwrapRuntime(home=Path(home))
        try:
            box = await runtime.create(BoxOptions(name="bench-python"))
            cells, execs, started_ms = await session_vs_exec(box, samples)
        finally:
            await runtime.aclose()
    cell, fresh = Summary.of(cells), Summary.of(execs)
    speedup = ratio(fresh.median, cell.median)
    print(f"python_run 1+1 (session)     : {cell.ms()}  n={cell.n}")
    print(f"exec python3 -c '1+1'        : {fresh.ms()}  n={fresh.n}")
    print(f"session start (first cell)   : {started_ms:.1f} ms")
    print(f"speed-up (median)            : {fmt_ratio(speedup)}x  (goal >= 5x)")
    return 0 if speedup >= 5 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    sys.exit(asyncio.run(main(parser.parse_args().samples)))
