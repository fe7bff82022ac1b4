"""Leak soak: MCP clients create boxes and vanish; after the idle TTL no box is left.

    python -m tools.leak_soak                      # 200 clients, TTL 10 s
    python -m tools.leak_soak --clients 40 --ttl 2 --margin 8
    python -m tools.leak_soak --long-every 0 --inflight-every 0   # no long-running execs

Starts ``python -m boxlite_mcp`` over streamable HTTP (bwrap runtime, its own home,
the given idle TTL and reap interval) and worker processes running the clients:
stdio clients (each with its own ``python -m boxlite_mcp`` on its own home) that are
SIGKILLed, HTTP clients in both protocol eras that are SIGKILLed (no DELETE), and
clients that stay connected but stop talking. Each client creates boxes, runs
commands (one leaves a background process in its box), and some leave a long
``sleep`` running (``exec_start``) or an ``exec_run`` of one in flight.

After TTL + reap interval + margin, it checks the box records in every home, the
host's processes, mounts and cgroups, and what a ``BwrapRuntime`` opened on each
home lists; prints one Markdown table (per kind: clients, boxes created, boxes
left, processes left, time until none was left); exits 1 if anything is left.
See ``tools/leak_soak/soak.py`` for the kinds and docs/soak.md for results.
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from tools.benchlib.machine import load_average
from tools.leak_soak.soak import cleanup, report, run_soak
from tools.soaklib.report import command_line, print_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="clients in all (default 200)")
    parser.add_argument(
        "--ttl",
        type=float,
        default=10.0,
        help="box idle TTL, seconds (default 10; it must exceed the slowest "
        "gap between two calls of one client on this machine under this load)",
    )
    parser.add_argument("--reap-interval", type=float, default=0.5, help="seconds")
    parser.add_argument(
        "--margin",
        type=float,
        default=10.0,
        help="seconds after TTL + reap interval before checking",
    )
    parser.add_argument(
        "--long-every",
        type=int,
        default=3,
        help="every n-th client leaves an exec_start of a long sleep (0: none)",
    )
    parser.add_argument(
        "--inflight-every",
        type=int,
        default=3,
        help="every n-th client vanishes with an exec_run in flight (0: none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep homes and logs")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    command = command_line("leak_soak", argv)
    load = load_average()
    result = anyio.run(
        lambda: run_soak(
            clients=ns.clients,
            ttl=ns.ttl,
            reap_interval=ns.reap_interval,
            margin=ns.margin,
            long_every=ns.long_every,
            inflight_every=ns.inflight_every,
        )
    )
    print_report(report(result, command), load, result.root if ns.keep else None)
    if not ns.keep:
        cleanup(result)
    return 0 if result.passed else 1
