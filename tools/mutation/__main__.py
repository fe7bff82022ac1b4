"""``python -m tools.mutation MODULE --tests TESTPATHS...``: see :mod:`tools.mutation`.

Exit status: 0 when the run finished (and met ``--min-score`` if given), 1 when
the score is below ``--min-score``, 2 for bad input or when the tests fail
without any mutant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from . import equivalents as eq
from .mutants import find_mutants, operator_names, short_operator
from .report import render, summarise
from .runner import Result, Runner, RunnerError, Status, workspace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.mutation",
        description="Mutation-test one module against the tests that cover it, "
        "in copies of the project (the working tree is never changed).",
    )
    p.add_argument("module", help="the module's file, e.g. boxlite_mcp/runtime/shared/archive.py")
    p.add_argument(
        "--tests",
        nargs="+",
        required=True,
        metavar="PATH",
        help="test files or directories to run against each mutant",
    )
    p.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="the project root the paths are relative to (default: .)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="mutants tested at once, each in its own copy (default: 2)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per mutant (default: 5x the baseline run, at least 30)",
    )
    p.add_argument(
        "--equivalents",
        default=None,
        metavar="FILE",
        help="Markdown file with the table of known equivalent mutants "
        "(default: docs/mutation.md if present; 'none' for no table)",
    )
    p.add_argument(
        "--operators",
        default="default",
        help="'default', 'all' or comma-separated cosmic-ray operator names",
    )
    p.add_argument(
        "--lines",
        default=None,
        metavar="A-B",
        help="only mutants on these source lines (to iterate on one function)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 if under PCT%% of the non-equivalent mutants are killed",
    )
    p.add_argument(
        "--pytest-args",
        default="",
        metavar="ARGS",
        help="extra pytest arguments, as one shell-quoted string",
    )
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    return p


def _line_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise ValueError(f"--lines {text!r} is not a line range; write e.g. 260-320 or 272")
    return int(lo), int(hi) if sep else int(lo)


def _module_path(project: Path, module: str) -> str:
    path = Path(module)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(project)
        except ValueError:
            raise ValueError(f"module {module} is not inside the project {project}") from None
    if path.suffix != ".py" or not (project / path).is_file():
        raise ValueError(
            f"module {module!r} is not a Python file under {project}; "
            "pass its path, e.g. boxlite_mcp/runtime/shared/archive.py"
        )
    return path.as_posix()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        project = args.project.resolve()
        module = _module_path(project, args.module)
        missing = [t for t in args.tests if not (project / t.split("::")[0]).exists()]
        if missing:
            raise ValueError(f"test path(s) {', '.join(missing)} not found under {project}")
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers}: give at least 1")
        operators = operator_names(args.operators)
        lines = _line_range(args.lines) if args.lines else None
        table_path = args.equivalents or (
            str(project / "docs/mutation.md") if (project / "docs/mutation.md").exists() else "none"
        )
        table = [] if table_path == "none" else eq.load(Path(table_path))
        extra = shlex.split(args.pytest_args)
    except (ValueError, eq.EquivalentsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    source = (project / module).read_text(encoding="utf-8")
    mutants = find_mutants(project, module, operators)
    if lines:
        mutants = [m for m in mutants if lines[0] <= m.line <= lines[1]]
    if args.list:
        for m in mutants:
            print(f"L{m.line} {m.definition or '<module>'}: {m.label}  `{m.code}`")
        print(f"{len(mutants)} mutants")
        return 0

    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
        *args.tests,
    ]
    with workspace() as tmp:
        try:
            runner = Runner(project, module, command, args.workers, tmp)
            runner.check_import()
            base = runner.baseline()
        except RunnerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        # Generous: a slow run on a busy machine must not pass for a hang.
        timeout = args.timeout or max(30.0, 5 * base.seconds)
        print(
            f"{module}: {len(mutants)} mutants, tests {' '.join(args.tests)}; baseline "
            f"passed in {base.seconds:.1f} s; timeout {timeout:.0f} s; {args.workers} worker(s)",
            file=sys.stderr,
        )
        done = 0

        def progress(result: Result) -> None:
            nonlocal done
            done += 1
            m = result.mutant
            mark = "" if result.status is not Status.SURVIVED else "  <-- survived"
            print(
                f"[{done}/{len(mutants)}] {result.status.value:9} L{m.line} "
                f"{short_operator(m.operator)}{mark}",
                file=sys.stderr,
                flush=True,
            )

        try:
            results = runner.run_mutants(mutants, timeout, progress)
        except RunnerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; the working tree was never changed", file=sys.stderr)
            return 130

    summary = summarise(module, results, table)
    print(render(summary, source, ran_all=lines is None and args.operators == "default"))
    if args.min_score is not None and summary.score < args.min_score:
        print(f"score {summary.score:.1f}% is below --min-score {args.min_score}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
