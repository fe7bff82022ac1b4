"""boxlite-mcp benchmarks: one command, one Markdown table, every figure from one run.

    python -m tools.bench            # the full run (about 2 minutes on 2 cores)
    python -m tools.bench --quick    # a fast variant (under 40 s): same rows, fewer samples

It prints the machine it ran on, then one table with, side by side:

1. exec round trip of ``true``: this project's REST client vs the official SDK's REST
   client (``boxlite`` 0.10, ``Boxlite.rest``), against the same BoxLite test server
   (``tools/boxlite_server`` over bwrap, in its own process), on the same box;
   and our client over the 0.9 generation (which the SDK does not speak);
2. 64 MiB of stdout through both clients (MB/s, and the client's own CPU time);
3. box create -> first exec, and the exec round trip, on the bwrap runtime vs a plain
   host subprocess of ``true``;
4. MCP overhead per exec: ``exec_run`` of ``true`` through a real
   ``python -m boxlite_mcp --runtime bwrap`` over stdio vs a direct runtime call;
5. stdout throughput through MCP progress notifications, and their rate;
6. first-output latency: the box's clock at the write vs the MCP client's on receipt;
7. 100 boxes with 64 concurrent execs: p50 and p99 (direct runtime, and over REST);
8. the MCP server's memory per box;
9. a box's network: a download from a host server through the box's proxy, connect to
   first byte, and box_expose throughput, each vs the same transfer on the host.

Ratios are this project over the alternative; for times lower is better, for
throughput higher is better. Goals are DESIGN.md's. ``--json FILE`` also writes
the rows and the raw samples' summaries as JSON. Exit status 1 if any row could not
be measured (the table says why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import BoxOptions, NetworkSpec
from tools.bench import mcp, network, runtime
from tools.bench.stats import Summary, fmt_ratio, ms, ratio
from tools.bench.table import Goal, Row, failed, render
from tools.benchlib import procs
from tools.benchlib.machine import describe, load_average

log = logging.getLogger("bench")

API_KEY = "bench-api-key"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How many samples of what; ``--quick`` shrinks everything, keeps every row."""

    rest_iterations: int = 200
    rest_flood_mib: int = 64
    rest_flood_repeats: int = 5
    create_samples: int = 20
    exec_iterations: int = 200
    scale_boxes: int = 100
    scale_concurrency: int = 64
    scale_jobs: int = 640
    mcp_iterations: int = 300
    mcp_flood_mib: int = 64
    mcp_flood_repeats: int = 3
    first_output_samples: int = 30
    memory_boxes: int = 50
    net_mib: int = 100
    net_repeats: int = 5
    net_latency_samples: int = 30

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            rest_iterations=15,
            rest_flood_mib=4,
            rest_flood_repeats=1,
            create_samples=3,
            exec_iterations=15,
            scale_boxes=10,
            scale_concurrency=8,
            scale_jobs=40,
            mcp_iterations=15,
            mcp_flood_mib=4,
            mcp_flood_repeats=1,
            first_output_samples=3,
            memory_boxes=5,
            net_mib=8,
            net_repeats=2,
            net_latency_samples=5,
        )


def labels(plan: Plan) -> dict[str, str]:
    """Row key -> what the row measures, in table order."""
    scale = f"{plan.scale_boxes} boxes, {plan.scale_concurrency} concurrent execs of `true`"
    return {
        "rest_rtt_010": "exec round trip of `true`, REST API 0.10: our client vs the official "
        "SDK's (same server, same box; median, p99; client CPU per round trip, mean)",
        "rest_rtt_09": "exec round trip of `true`, REST API 0.9 (SSE): our client alone "
        "(the SDK speaks only 0.10; client CPU per round trip, mean)",
        "rest_flood_010": f"{plan.rest_flood_mib} MiB of stdout, REST API 0.10: our client vs "
        "the official SDK's (median MB/s; client CPU)",
        "rest_flood_09": f"{plan.rest_flood_mib} MiB of stdout, REST API 0.9 (SSE): our "
        "client alone",
        "bwrap_create": "box create -> first exec of `true` done: bwrap runtime vs a host "
        "subprocess of `true`",
        "bwrap_rtt": "exec round trip of `true` in a running box: bwrap runtime vs a host "
        "subprocess",
        "mcp_exec": "exec_run of `true` over MCP stdio (real `python -m boxlite_mcp`) vs a "
        "direct bwrap runtime call",
        "mcp_overhead": "MCP overhead per exec (median MCP - median direct)",
        "mcp_python": "python_run of `1+1` (persistent session) vs exec_run of "
        '`python3 -c "1+1"`, both over MCP stdio',
        "mcp_throughput": f"{plan.mcp_flood_mib} MiB of stdout through MCP progress "
        "notifications (stdio) vs read from the runtime directly",
        "mcp_rate": "progress notification rate during that stream",
        "mcp_first_output": "first-output latency: box writes a byte -> MCP client receives "
        "it (vs direct runtime read)",
        "scale_direct": f"{scale}: bwrap runtime vs host subprocesses (p50 / p99)",
        "scale_rest": f"{scale} through our REST client (API 0.10) -> test server -> bwrap, "
        "vs direct (p50 / p99)",
        "net_download": f"{plan.net_mib} MiB download from a host loopback HTTP server: in a "
        "box (curl through its proxy, as host.boxlite.internal) vs on the host "
        "(median MB/s)",
        "net_latency": "connect -> first byte of that server: in a box vs on the host "
        "(median; added)",
        "net_expose": f"{plan.net_mib} MiB from an HTTP server in a box through box_expose vs "
        "the same server on the host (host curl, median MB/s)",
        "mem_server": f"MCP server RSS per running box ({plan.memory_boxes} boxes)",
        "mem_boxes": "box processes' RSS per box (bwrap sandbox, outside the server)",
    }


class Results:
    """Rows by key, plus raw summaries for ``--json``."""

    def __init__(self, plan: Plan) -> None:
        self.labels = labels(plan)
        self.rows: dict[str, Row] = {}
        self.raw: dict[str, object] = {}

    def add(
        self,
        key: str,
        ours: str,
        alternative: str = "—",
        ratio_text: str = "—",
        goal: Goal | None = None,
    ) -> None:
        self.rows[key] = Row(
            key, self.labels[key], ours, alternative, ratio_text, goal or Goal("—")
        )

    def fail(self, keys: list[str], error: str) -> None:
        for key in keys:
            if key not in self.rows:
                self.rows[key] = failed(key, self.labels[key], error)

    def ordered(self) -> list[Row]:
        return [self.rows[key] for key in self.labels if key in self.rows]


@contextmanager
def section(results: Results, name: str, keys: list[str]) -> Iterator[None]:
    """Run one part of the benchmark; a failure marks its rows instead of ending the run."""
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        log.debug("section %s failed", name, exc_info=True)
        print(f"bench: {name} failed: {exc!r}\n{traceback.format_exc()}", file=sys.stderr)
        results.fail(keys, f"{type(exc).__name__}: {exc}"[:200])
    print(f"bench: {name} took {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


async def alternate(samples: int, *jobs: Callable[[], Awaitable[object]]) -> list[list[float]]:
    """Time each job ``samples`` times, taking turns, so drift hits all alike (ms)."""
    taken: list[list[float]] = [[] for _ in jobs]
    for _ in range(samples):
        for index, job in enumerate(jobs):
            start = time.perf_counter()
            await job()
            taken[index].append((time.perf_counter() - start) * 1000)
    return taken


def p50_p99(samples: list[float]) -> str:
    s = Summary.of(samples)
    return f"{ms(s.median)} / {ms(s.p99)} ms"


# -- 1, 2 and the REST half of 7: the REST clients ---------------------------------------


async def rest_part(plan: Plan, work: Path, results: Results) -> None:
    keys = ["rest_rtt_010", "rest_rtt_09", "rest_flood_010", "rest_flood_09"]
    with section(results, "BoxLite test server", [*keys, "scale_rest"]):
        async with procs.rest_server(
            work / "rest-home", API_KEY, work / "rest-server.log"
        ) as server:
            with section(results, "REST clients (ours vs the official SDK)", keys):
                await rest_clients(plan, server.url, results)
            with section(results, f"{plan.scale_boxes} boxes over REST", ["scale_rest"]):
                await scale_rest(plan, server.url, results)


async def rest_clients(plan: Plan, url: str, results: Results) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.rest_worker",
        "--url",
        url,
        "--api-key",
        API_KEY,
        "--iterations",
        str(plan.rest_iterations),
        "--mib",
        str(plan.rest_flood_mib),
        "--repeats",
        str(plan.rest_flood_repeats),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=procs.REPO,
        env=procs.child_env(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 240)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError("the REST client worker took more than 240 s") from None
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"the REST client worker printed nothing: {err.decode()[-500:]}")
    data = json.loads(lines[-1])
    if not data.get("ok"):
        raise RuntimeError(f"REST client worker: {data.get('error')}")
    results.raw["rest_worker"] = data
    errors: dict[str, str] = data["errors"]
    rtt: dict[str, list[float]] = data["roundtrip_ms"]
    flood: dict[str, list[dict[str, float]]] = data["flood"]

    def missing(name: str) -> str:
        return f"not measured: {errors.get(name, 'no samples')}"[:200]

    cpu: dict[str, list[float]] = data.get("roundtrip_cpu_ms") or {}

    def rtt_cell(name: str) -> str:
        """``3.40 ms (p99 4.21); CPU 1.30 ms``: wall median and p99, client CPU mean."""
        text = Summary.of(rtt[name]).ms()
        spent = cpu.get(name) or []
        return f"{text}; CPU {ms(statistics.mean(spent))} ms" if spent else text

    ours, sdk = rtt.get("ours-0.10") or [], rtt.get("sdk") or []
    if ours and sdk:
        a, b = Summary.of(ours), Summary.of(sdk)
        r = ratio(a.median, b.median)
        results.add(
            "rest_rtt_010",
            rtt_cell("ours-0.10"),
            rtt_cell("sdk"),
            fmt_ratio(r),
            Goal("ratio ≤ 1.0", r <= 1.0),
        )
    else:
        results.add(
            "rest_rtt_010",
            rtt_cell("ours-0.10") if ours else missing("ours-0.10"),
            rtt_cell("sdk") if sdk else missing("sdk"),
            "—",
            Goal("ratio ≤ 1.0", None),
        )
    v09 = rtt.get("ours-0.9") or []
    results.add("rest_rtt_09", rtt_cell("ours-0.9") if v09 else missing("ours-0.9"))

    def flood_cell(name: str) -> tuple[str, float | None]:
        runs = flood.get(name) or []
        if not runs:
            return missing(name), None
        mbps = statistics.median(run["mb_per_s"] for run in runs)
        cpu = statistics.median(run["cpu_seconds"] for run in runs)
        return f"{mbps:.0f} MB/s (client CPU {cpu:.2f} s)", mbps

    ours_cell, ours_mbps = flood_cell("ours-0.10")
    sdk_cell, sdk_mbps = flood_cell("sdk")
    if ours_mbps is not None and sdk_mbps is not None:
        r = ratio(ours_mbps, sdk_mbps)
        results.add(
            "rest_flood_010",
            ours_cell,
            sdk_cell,
            fmt_ratio(r),
            Goal("ratio ≥ 1.0 (at least as fast)", r >= 1.0),
        )
    else:
        results.add("rest_flood_010", ours_cell, sdk_cell, "—", Goal("ratio ≥ 1.0", None))
    results.add("rest_flood_09", flood_cell("ours-0.9")[0])


async def scale_rest(plan: Plan, url: str, results: Results) -> None:
    client = RestRuntime(RestSettings(url=url, api="0.10", api_key=SecretStr(API_KEY)))
    try:
        latencies, wall = await runtime.exec_load(
            client, plan.scale_boxes, plan.scale_jobs, plan.scale_concurrency, "scale-rest"
        )
        results.raw["scale_rest"] = {"latencies": asdict(Summary.of(latencies)), "wall": wall}
        results.raw["scale_rest_ms"] = latencies
        results.raw["scale_rest_rate"] = plan.scale_jobs / wall
    finally:
        await client.aclose()


# -- 3 and the direct half of 7: the bwrap runtime itself ---------------------------------


async def runtime_part(plan: Plan, direct: Runtime, results: Results) -> None:
    with section(results, "bwrap runtime vs host subprocess", ["bwrap_create", "bwrap_rtt"]):
        await runtime.host_true()
        await runtime.create_to_first_exec(direct)
        create: list[float] = []
        host_spawn: list[float] = []
        for _ in range(plan.create_samples):
            create.append(await runtime.create_to_first_exec(direct))
            host_spawn.extend(await runtime.timed(runtime.host_true, 1))
        a, b = Summary.of(create), Summary.of(host_spawn)
        results.add("bwrap_create", a.ms(), b.ms(), fmt_ratio(ratio(a.median, b.median)))
        box = await direct.create(BoxOptions(name="bench-rtt"))
        await runtime.run_exec(box)
        ours, host = await alternate(
            plan.exec_iterations, lambda: runtime.run_exec(box), runtime.host_true
        )
        a, b = Summary.of(ours), Summary.of(host)
        results.add("bwrap_rtt", a.ms(), b.ms(), fmt_ratio(ratio(a.median, b.median)))
        await direct.remove(box.id, force=True)

    keys = ["scale_direct", "scale_rest"]
    with section(results, f"{plan.scale_boxes} boxes, {plan.scale_concurrency} concurrent", keys):
        latencies, wall = await runtime.exec_load(
            direct, plan.scale_boxes, plan.scale_jobs, plan.scale_concurrency, "scale"
        )
        host, host_wall = await runtime.concurrently(
            plan.scale_jobs, plan.scale_concurrency, lambda i: runtime.host_true()
        )
        ours_s, host_s = Summary.of(latencies), Summary.of(host)
        results.add(
            "scale_direct",
            f"{p50_p99(latencies)}; {plan.scale_jobs / wall:.0f} execs/s",
            f"{p50_p99(host)}; {plan.scale_jobs / host_wall:.0f} spawns/s",
            f"{fmt_ratio(ratio(ours_s.median, host_s.median))} (p50), "
            f"{fmt_ratio(ratio(ours_s.p99, host_s.p99))} (p99)",
        )
        rest = results.raw.get("scale_rest_ms")
        if isinstance(rest, list) and rest:
            rest_s = Summary.of(rest)
            rate = results.raw.get("scale_rest_rate")
            results.add(
                "scale_rest",
                f"{p50_p99(rest)}; {rate:.0f} execs/s",
                f"{p50_p99(latencies)} (direct, row above)",
                f"{fmt_ratio(ratio(rest_s.median, ours_s.median))} (p50), "
                f"{fmt_ratio(ratio(rest_s.p99, ours_s.p99))} (p99)",
            )


# -- 4, 5, 6, 8: the MCP server over stdio ------------------------------------------------


async def mcp_part(plan: Plan, work: Path, direct: Runtime, results: Results) -> None:
    keys = [
        "mcp_exec",
        "mcp_overhead",
        "mcp_python",
        "mcp_throughput",
        "mcp_rate",
        "mcp_first_output",
        "mem_server",
        "mem_boxes",
    ]
    with section(results, "MCP server over stdio", keys):
        async with mcp.mcp_server(
            work / "mcp-home", work / "mcp-server.log", plan.memory_boxes + 5
        ) as server:
            client = server.client
            await mcp.call(client, "box_create", {"name": "bench"})
            box = await direct.create(BoxOptions(name="bench-direct"))
            try:
                await mcp_measure(plan, server, box, results)
            finally:
                await direct.remove(box.id, force=True)


async def mcp_measure(plan: Plan, server: mcp.McpServer, box: Box, results: Results) -> None:
    client = server.client
    for _ in range(3):  # warm both paths: imports, first exec, caches
        await mcp.exec_true(client, "bench")
        await runtime.run_exec(box)

    # Memory first, while the server has handled nothing big (a 64 MiB stream would
    # leave its allocator in another state); the boxes go before the timed parts.
    names = [f"mem-{i}" for i in range(plan.memory_boxes)]
    memory = await mcp.memory(server, names)
    await mcp.remove_boxes(client, names)
    results.raw["memory"] = asdict(memory)
    results.add(
        "mem_server",
        f"{memory.server_per_box_kib:.0f} KiB/box "
        f"({memory.server_before_kib / 1024:.0f} -> "
        f"{memory.server_after_kib / 1024:.0f} MiB)",
    )
    results.add(
        "mem_boxes",
        f"{memory.box_per_box_kib:.0f} KiB/box "
        f"({memory.box_processes / memory.boxes:.1f} processes per box)",
    )

    over, direct = await alternate(
        plan.mcp_iterations, lambda: mcp.exec_true(client, "bench"), lambda: runtime.run_exec(box)
    )
    a, b = Summary.of(over), Summary.of(direct)
    results.add("mcp_exec", a.ms(), b.ms(), fmt_ratio(ratio(a.median, b.median)))
    overhead = a.median - b.median
    results.add(
        "mcp_overhead",
        f"{overhead:+.2f} ms",
        f"direct {ms(b.median)} ms",
        "—",
        Goal("≤ 2 ms median", overhead <= 2.0),
    )

    for _ in range(3):  # the session's interpreter starts on the first call
        await mcp.python_one_plus_one(client, "bench")
        await mcp.exec_python_one_plus_one(client, "bench")
    session, fresh = await alternate(
        plan.mcp_iterations,
        lambda: mcp.python_one_plus_one(client, "bench"),
        lambda: mcp.exec_python_one_plus_one(client, "bench"),
    )
    a, b = Summary.of(session), Summary.of(fresh)
    speedup = ratio(b.median, a.median)
    results.add(
        "mcp_python", a.ms(), b.ms(), f"{speedup:.1f}x faster", Goal("≥ 5x faster", speedup >= 5)
    )

    nbytes = plan.mcp_flood_mib * MiB
    floods: list[mcp.Flood] = []
    direct_mbps: list[float] = []
    for _ in range(plan.mcp_flood_repeats):
        floods.append(await mcp.flood(client, "bench", nbytes))
        direct_mbps.append(await runtime.flood(box, nbytes))
    mbps = statistics.median(f.mb_per_s for f in floods)
    dmbps = statistics.median(direct_mbps)
    results.add(
        "mcp_throughput",
        f"{mbps:.0f} MB/s",
        f"{dmbps:.0f} MB/s (direct)",
        fmt_ratio(ratio(mbps, dmbps)),
        Goal("≥ 20 MB/s", mbps >= 20),
    )
    rate = statistics.median(f.per_second for f in floods)
    count = statistics.median(f.notifications for f in floods)
    size = nbytes / count / 1024 if count else 0
    results.add(
        "mcp_rate",
        f"{rate:.0f} /s ({count:.0f} notifications, {size:.0f} KiB each)",
        goal=Goal("≤ 100 /s", rate <= 100),
    )
    results.raw["mcp_floods"] = [asdict(f) for f in floods]

    first: list[float] = []
    first_direct: list[float] = []
    for _ in range(plan.first_output_samples):
        first.append(await mcp.first_output(client, "bench"))
        first_direct.append(await runtime.first_output(box))
    a, b = Summary.of(first), Summary.of(first_direct)
    results.add(
        "mcp_first_output",
        a.ms(),
        b.ms(),
        fmt_ratio(ratio(a.median, b.median)),
        Goal("≤ 50 ms (median)", a.median <= 50),
    )


# -- 9: a box's network ------------------------------------------------------------------


def _served_files(directory: Path, size: int) -> Path:
    """``blob`` (``size`` bytes, sparse) and ``small`` (one byte) to serve."""
    directory.mkdir()
    with open(directory / "blob", "wb") as f:
        f.truncate(size)
    (directory / "small").write_bytes(b"x")
    return directory


async def network_part(plan: Plan, work: Path, results: Results) -> None:
    keys = ["net_download", "net_latency", "net_expose"]
    with section(results, "box network", keys):
        size = plan.net_mib * MiB
        served = _served_files(work / "net-served", size)
        port = procs.free_port()
        rt = BwrapRuntime(home=work / "net-home", net_allow=[f"host.boxlite.internal:{port}"])
        try:
            async with network.file_server(served, port):
                box = await rt.create(BoxOptions(network=NetworkSpec(mode="enabled")))
                inside = f"http://host.boxlite.internal:{port}"
                outside = f"http://127.0.0.1:{port}"
                await network.box_fetch(box, f"{inside}/small")
                box_mbps: list[float] = []
                host_mbps: list[float] = []
                for _ in range(plan.net_repeats):
                    box_mbps.append((await network.box_fetch(box, f"{inside}/blob")).mb_per_s)
                    host_mbps.append((await network.host_fetch(f"{outside}/blob")).mb_per_s)
                a, b = statistics.median(box_mbps), statistics.median(host_mbps)
                share = ratio(a, b)
                results.add(
                    "net_download",
                    f"{a:.0f} MB/s",
                    f"{b:.0f} MB/s",
                    fmt_ratio(share),
                    Goal("≥ 0.3 of the host's", share >= 0.3),
                )
                box_ms: list[float] = []
                host_ms: list[float] = []
                for _ in range(plan.net_latency_samples):
                    box_ms.append(
                        (await network.box_fetch(box, f"{inside}/small")).first_byte * 1000
                    )
                    host_ms.append((await network.host_fetch(f"{outside}/small")).first_byte * 1000)
                a_s, b_s = Summary.of(box_ms), Summary.of(host_ms)
                added = a_s.median - b_s.median
                results.add(
                    "net_latency",
                    a_s.ms(),
                    b_s.ms(),
                    f"{added:+.2f} ms",
                    Goal("< 5 ms added (median)", added < 5),
                )
                await network.start_box_server(box, size, 8000)
                exposed = await box.expose(8000)
                exposed_mbps: list[float] = []
                direct_mbps: list[float] = []
                for _ in range(plan.net_repeats):
                    exposed_mbps.append((await network.host_fetch(f"{exposed.url}blob")).mb_per_s)
                    direct_mbps.append((await network.host_fetch(f"{outside}/blob")).mb_per_s)
                a, b = statistics.median(exposed_mbps), statistics.median(direct_mbps)
                results.add(
                    "net_expose",
                    f"{a:.0f} MB/s",
                    f"{b:.0f} MB/s (host server)",
                    fmt_ratio(ratio(a, b)),
                )
        finally:
            await runtime.remove_all(rt)
            await rt.aclose()


async def run(plan: Plan, work: Path) -> Results:
    results = Results(plan)
    await rest_part(plan, work, results)
    direct = BwrapRuntime(home=work / "bwrap-home")
    try:
        await runtime_part(plan, direct, results)
        await mcp_part(plan, work, direct, results)
        await network_part(plan, work, results)
    finally:
        await runtime.remove_all(direct)
        await direct.aclose()
    results.fail(list(results.labels), "its section did not run")
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer samples and smaller sizes (same rows); under 40 s",
    )
    p.add_argument("--json", type=Path, default=None, help="also write rows and raw figures here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, homes)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    plan = Plan.quick() if args.quick else Plan()
    work = Path(tempfile.mkdtemp(prefix="boxlite-bench-"))
    load = load_average()
    start = time.perf_counter()
    try:
        results = asyncio.run(run(plan, work))
    finally:
        if args.keep:
            print(f"bench: work directory kept at {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - start
    rows = results.ordered()
    command = "python -m tools.bench" + (" --quick" if args.quick else "")
    print(f"### boxlite-mcp benchmarks (`{command}`, {elapsed:.0f} s)\n")
    print("\n".join(describe(procs.REPO, load)))
    print()
    print(render(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "quick": args.quick,
                    "seconds": elapsed,
                    "plan": asdict(plan),
                    "rows": [asdict(row) for row in rows],
                    "raw": results.raw,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if any(row.ours.startswith("not measured") for row in rows) else 0
