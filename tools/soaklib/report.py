"""What every proof command prints around its tables: the command as typed, the machine.

A report must say how to reproduce it (the command line, quoted as a shell would take
it) and where it ran (``benchlib.machine``), and where kept homes and logs are.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tools.benchlib.machine import describe
from tools.benchlib.procs import REPO


def command_line(tool: str, argv: list[str] | None) -> str:
    """``python -m tools.<tool> ARGS``: ``argv``, or this process's arguments when None."""
    return shlex.join(["python", "-m", f"tools.{tool}", *(sys.argv[1:] if argv is None else argv)])


def print_report(body: str, load_at_start: float, kept: Path | None) -> None:
    """The report, the machine it ran on, then where homes and logs were kept (if they were)."""
    print(body)
    print()
    print("\n".join(describe(REPO, load_at_start)))
    if kept is not None:
        print(f"\nhomes and logs kept in {kept}")
