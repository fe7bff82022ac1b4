"""Tool-call fuzz: generated calls from the served input schemas never crash the server.

    python -m tools.fuzz_tools                     # 10,000 calls, 10% over stdio
    python -m tools.fuzz_tools --calls 500 --seed 7 --stdio-share 0.2
    python -m tools.fuzz_tools --keep              # keep homes, the host root and logs

Half the calls are valid-shaped (drawn from each tool's ``inputSchema`` as the
server serves it, fed real box ids, execution ids and paths), half deliberately
broken (wrong types, missing required fields, unknown fields, huge strings,
unicode and NUL bytes, negative and absurd numbers, path traversal, not an
object). They go to an in-memory ``Client`` (both protocol eras) and, a share of
them, to a real ``python -m boxlite_mcp`` over stdio. See ``tools/fuzz_tools/fuzz.py``
for what counts as a crash and what is checked between batches and at the end.

Prints one Markdown table (per tool: calls, ok, isError, protocol errors, crashes,
distinct error messages) and every crash with its arguments; exits 1 on any crash,
hang, unresponsive server, change outside the allowed root, or box left behind.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from tools.benchlib.machine import load_average
from tools.fuzz_tools.fuzz import report, run_fuzz
from tools.soaklib.report import command_line, print_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument(
        "--stdio-share",
        type=float,
        default=0.1,
        help="fraction of calls sent over a real stdio server (default 0.1)",
    )
    parser.add_argument(
        "--batch", type=int, default=200, help="calls between responsiveness checks and clean-ups"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep homes and logs")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)  # the server's own log
    command = command_line("fuzz_tools", argv)
    load = load_average()
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="boxlite-fuzz-"))
    try:
        result = run_fuzz(
            calls=ns.calls,
            stdio_share=ns.stdio_share,
            batch=ns.batch,
            seed_value=ns.seed,
            root=root,
        )
    finally:
        if not ns.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_report(report(result, command), load, root if ns.keep else None)
    return 0 if result.passed else 1
