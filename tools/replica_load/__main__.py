"""``python -m tools.replica_load``: the load run on 3 replicas with a kill, then on one.

Prints a table (markdown) and exits 1 if any output was lost or any box leaked.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import anyio

from tools.bench.stats import ms

from .run import LoadResult, Workload, run_load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.replica_load", description=__doc__)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--execs", type=int, default=20, help="execs per agent")
    p.add_argument("--concurrency", type=int, default=20, help="agents at once")
    p.add_argument("--no-baseline", action="store_true", help="skip the one-replica run")
    p.add_argument("--work", type=Path, default=None)
    return p.parse_args(argv)


def table(results: list[LoadResult]) -> str:
    rows = [
        "| replicas | replica killed | execs | lost outputs | leaked boxes | retried calls "
        "| execs/s | p50 ms | p99 ms | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.replicas} | {'yes' if r.killed else 'no'} | {r.execs_done} | {r.lost_outputs} "
            f"| {r.leaked_boxes} | {r.retried_calls} | {r.throughput:.1f} | {ms(r.p(50))} "
            f"| {ms(r.p(99))} | {r.wall_seconds:.1f} |"
        )
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> list[LoadResult]:
    work = args.work or Path(tempfile.mkdtemp(prefix="boxlite-replica-load-"))
    workload = Workload(agents=args.agents, execs=args.execs, concurrency=args.concurrency)
    results = [
        await run_load(
            work / "cluster", workload, replicas=args.replicas, kill=True, progress=print
        )
    ]
    if not args.no_baseline:
        results.append(await run_load(work / "single", workload, replicas=1, kill=False))
    return results


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = parse_args(argv)
    results = anyio.run(main_async, args)
    print(table(results))
    for result in results:
        for failure in result.failures[:20]:
            print(f"  {failure}", file=sys.stderr)
    if any(r.lost_outputs or r.leaked_boxes or r.failures for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
