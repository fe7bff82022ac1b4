"""Isolation probe: one owner attacks another's boxes, executions, files and snapshots.

    python -m tools.isolation_probe            # both scenarios; homes under /var/tmp
    python -m tools.isolation_probe --keep     # keep homes, host directories and logs

Starts ``python -m boxlite_mcp --transport streamable-http`` twice (bwrap runtime,
one allowed host directory each): with bearer auth (two tokens from a tokens file:
owners A and B), and without auth (A and B are two handshake-era sessions). A makes
boxes, executions, a snapshot and host files; B tries every tool, resource URI and
name it could guess or have leaked to it (see ``tools/isolation_probe/isolation.py``).

Prints a table per scenario: attack kind, attempts, successes (each a breach).
Exits 1 if any attempt succeeded. Results: docs/soak.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import anyio

from tools.benchlib.machine import load_average
from tools.isolation_probe.isolation import report, run_probe
from tools.soaklib.report import command_line, print_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        help="where homes go (default: a new directory in "
        "/var/tmp; /tmp would hide them from boxes, unlike the default home)",
    )
    parser.add_argument("--keep", action="store_true", help="keep homes and logs")
    ns = parser.parse_args(argv)
    command = command_line("isolation_probe", argv)
    load = load_average()
    root = ns.root
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    else:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="boxlite-isolation-", dir="/var/tmp"))
    try:
        result = anyio.run(run_probe, root)
    finally:
        if not ns.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_report(report(result, command), load, root if ns.keep else None)
    return 1 if result.successes else 0
