"""Where the time of 64 concurrent REST execs goes: a profile of ``bench.py``'s scale rows.

    python -m tools.bench.rest_scale [--boxes 100] [--concurrency 64] [--jobs 640]
                                        [--runs 3] [--py-spy DIR]

``python -m tools.bench`` measures the REST row and the direct bwrap row at 64 concurrent
execs; this repeats just those two, side by side and ``--runs`` times (the machine
is shared, so only ratios within one run mean anything), and says where the REST
row's time goes:

- **CPU per exec, per process**: the client (this process), the test server
  (``python -m tools.boxlite_server``) and the server's children (bwrap and the
  boxes' processes), from ``/proc/PID/stat`` before and after. Two cores: when
  client + server + children approach 2 CPU-seconds per wall second, the machine
  is the limit; when one Python process approaches 1, that process is.
- **Client spans per exec** (medians and p99): ``POST /exec`` answered, the attach
  WebSocket upgraded, the exit frame received.
- ``--py-spy DIR``: a py-spy profile (speedscope JSON) of the server and of this
  process during the first REST run (py-spy is a measuring tool, not a dependency:
  ``pip install py-spy``).

Findings are in ``docs/benchmarks.md`` ("The REST client at load").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.rest.upgrade import Upgrades
from tools.bench import runtime
from tools.bench.stats import percentile
from tools.benchlib import procs

API_KEY = "bench-api-key"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+system, reaped children's user+system) CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    children = (int(fields[13]) + int(fields[14])) / _TICK
    return own, children


class Spans:
    """Client-side timing of each exec's steps, by wrapping the REST client's methods."""

    def __init__(self) -> None:
        self.post: list[float] = []
        self.upgrade: list[float] = []

    @contextlib.contextmanager
    def installed(self) -> Any:
        spans = self
        original_ws = Upgrades.websocket

        @contextlib.asynccontextmanager
        async def websocket(self: Upgrades, url: str, **kw: Any) -> AsyncIterator[Any]:
            start = time.perf_counter()
            async with original_ws(self, url, **kw) as ws:
                spans.upgrade.append((time.perf_counter() - start) * 1000)
                yield ws

        Upgrades.websocket = websocket  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Upgrades.websocket = original_ws  # type: ignore[method-assign]


async def timed_exec(box: Box, spans: Spans | None) -> None:
    start = time.perf_counter()
    execution = await box.exec(runtime.TRUE)
    if spans is not None:
        spans.post.append((time.perf_counter() - start) * 1000)
    await execution.close_stdin()
    async for _ in execution.output():
        pass
    await execution.wait()


@contextlib.asynccontextmanager
async def py_spy(pid: int, out: Path) -> AsyncIterator[None]:
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--py-spy needs py-spy on PATH (pip install py-spy)")
    process = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--format",
        "speedscope",
        "--output",
        str(out),
        "--rate",
        "200",
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)
    try:
        yield
    finally:
        process.send_signal(2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)


@contextlib.asynccontextmanager
async def _both(
    a: contextlib.AbstractAsyncContextManager[None], b: contextlib.AbstractAsyncContextManager[None]
) -> AsyncIterator[None]:
    async with a, b:
        yield


def line(name: str, samples: list[float]) -> str:
    return f"{name}: p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 99):.1f} ms"


async def one_run(
    args: argparse.Namespace, work: Path, index: int, direct: Runtime
) -> dict[str, float]:
    async with procs.rest_server(work / f"home-{index}", API_KEY, work / "server.log") as server:
        client = RestRuntime(RestSettings(url=server.url, api="0.10", api_key=SecretStr(API_KEY)))
        try:
            await runtime.start_boxes(client, 2, "warm")
            await runtime.remove_all(client)
            spans = Spans()
            me, srv = os.getpid(), server.pid
            profile: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
            if args.py_spy and index == 0:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                profile = _both(
                    py_spy(srv, args.py_spy / "server.speedscope.json"),
                    py_spy(me, args.py_spy / "client.speedscope.json"),
                )
            boxes = await runtime.start_boxes(client, args.boxes, "scale-rest")
            c0, s0 = cpu_seconds(me)[0], cpu_seconds(srv)
            async with profile:
                with spans.installed():
                    rest, wall = await runtime.concurrently(
                        args.jobs,
                        args.concurrency,
                        lambda i: timed_exec(boxes[i % len(boxes)], spans),
                    )
            c1, s1 = cpu_seconds(me)[0], cpu_seconds(srv)
            await runtime.remove_all(client)
        finally:
            await client.aclose()
    dboxes = await runtime.start_boxes(direct, args.boxes, f"scale-{index}")
    try:
        dc0 = cpu_seconds(os.getpid())
        d, dwall = await runtime.concurrently(
            args.jobs, args.concurrency, lambda i: timed_exec(dboxes[i % len(dboxes)], None)
        )
        dc1 = cpu_seconds(os.getpid())
    finally:
        await runtime.remove_all(direct)
    n = args.jobs
    result = {
        "rest_p50": statistics.median(rest),
        "rest_p99": percentile(rest, 99),
        "direct_p50": statistics.median(d),
        "direct_p99": percentile(d, 99),
        "rest_rate": n / wall,
        "direct_rate": n / dwall,
        "client_cpu_ms": (c1 - c0) / n * 1000,
        "server_cpu_ms": (s1[0] - s0[0]) / n * 1000,
        "server_children_cpu_ms": (s1[1] - s0[1]) / n * 1000,
        "direct_cpu_ms": (dc1[0] - dc0[0] + dc1[1] - dc0[1]) / n * 1000,
        "rest_cpu_per_wall": (c1 - c0 + s1[0] - s0[0] + s1[1] - s0[1]) / wall,
        "client_cpu_per_wall": (c1 - c0) / wall,
        "server_cpu_per_wall": (s1[0] - s0[0]) / wall,
    }
    print(
        f"run {index + 1}: REST {line('latency', rest)}, {n / wall:.0f} execs/s; "
        f"direct {line('latency', d)}, {n / dwall:.0f} execs/s; "
        f"ratio p50 {result['rest_p50'] / result['direct_p50']:.2f}, "
        f"p99 {result['rest_p99'] / result['direct_p99']:.2f}",
        flush=True,
    )
    print(
        f"  CPU per exec: client {result['client_cpu_ms']:.2f} ms, server "
        f"{result['server_cpu_ms']:.2f} ms, server's children "
        f"{result['server_children_cpu_ms']:.2f} ms; direct (all) "
        f"{result['direct_cpu_ms']:.2f} ms; busy: client {result['client_cpu_per_wall']:.2f}"
        f", server {result['server_cpu_per_wall']:.2f}, all "
        f"{result['rest_cpu_per_wall']:.2f} CPUs",
        flush=True,
    )
    print(
        f"  client spans: {line('POST /exec', spans.post)}; "
        f"{line('attach upgrade', spans.upgrade)}",
        flush=True,
    )
    return result


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="rest-scale-"))
    direct = BwrapRuntime(home=work / "direct")
    try:
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        for i in range(args.runs):
            await one_run(args, work, i, direct)
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        await direct.aclose()
        shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench.rest_scale",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--boxes", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--jobs", type=int, default=640)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
    sys.exit(0)
