"""Run the official MCP conformance suite against boxlite-mcp; print a Markdown report.

    python -m tools.conformance            # generic server scenarios, all legs; exit 1 on a failure
    python -m tools.conformance --all      # also run the fixture scenarios, reported, not judged

Starts ``boxlite-mcp --transport streamable-http --runtime bwrap`` on a free loopback
port (or tests ``--url``), installs the pinned npm packages with ``npm ci`` when they
are missing, and keeps every scenario's ``checks.json`` under ``--results``.
See docs/conformance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from tools.conformance.catalogue import LEGS, Leg, ServerFacts
from tools.conformance.runner import (
    Toolchain,
    Unavailable,
    Verdict,
    boxlite_server,
    judge,
    listed_scenarios,
    node_toolchain,
    plan,
    probe,
    run_scenario,
)
from tools.soaklib.report import command_line

log = logging.getLogger("conformance")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.conformance", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--all", action="store_true", help="also run the fixture scenarios (informational)"
    )
    parser.add_argument(
        "--leg",
        action="append",
        choices=[leg.name for leg in LEGS],
        help="run only this leg (repeatable); default: all",
    )
    parser.add_argument("--scenario", action="append", help="run only this scenario")
    parser.add_argument("--runtime", default="bwrap", help="server runtime (default: bwrap)")
    parser.add_argument("--url", help="test this running server instead of starting one")
    parser.add_argument("--results", type=Path, help="keep checks.json files here")
    parser.add_argument("--json", type=Path, help="also write the verdicts as JSON here")
    parser.add_argument(
        "--no-install", action="store_true", help="never run npm ci; fail if not installed"
    )
    return parser.parse_args(argv)


def run_leg(
    toolchain: Toolchain,
    leg: Leg,
    url: str,
    facts: ServerFacts,
    results: Path,
    include_fixtures: bool,
    only: set[str] | None,
) -> tuple[list[Verdict], list[str]]:
    """Judge one leg; returns its verdicts and catalogue problems (drift from the suite)."""
    steps = plan(leg, listed_scenarios(toolchain, leg), facts)
    problems = [
        f"{leg.name}: scenario `{n}` is not in tools/conformance/catalogue.py; classify it"
        for n in steps.unclassified
    ] + [
        f"{leg.name}: catalogue names `{n}`, which {leg.package} does not offer here"
        for n in steps.missing
    ]
    todo = [(n, "") for n in steps.judged]
    if include_fixtures:
        todo += list(steps.informational.items())
    verdicts = []
    for name, why_not_generic in todo:
        if only and name not in only:
            continue
        log.info("%s: %s", leg.name, name)
        run = run_scenario(toolchain, leg, name, url, results / leg.name / name)
        verdicts.append(judge(leg, run, facts, informational=why_not_generic))
    for name, reason in steps.not_applicable.items():
        if not only or name in only:
            verdicts.append(Verdict(leg.name, name, "n/a", reason=reason))
    return verdicts, problems


def _cell(items: list[str]) -> str:
    return "<br>".join(item.replace("|", "\\|") for item in items)


def report(
    verdicts: list[Verdict],
    problems: list[str],
    toolchain: Toolchain,
    runtime: str,
    url: str,
    command: str,
) -> str:
    judged = [v for v in verdicts if v.status in ("pass", "fail")]
    passing = sum(v.status == "pass" for v in judged)
    lines = [
        "## MCP conformance results",
        "",
        f"- command: `{command}`",
        f"- server: boxlite-mcp {_version()} over streamable HTTP ({url}), runtime `{runtime}`",
        f"- suite: {', '.join(f'{k} {v}' for k, v in toolchain.packages.items())}",
        f"- node {toolchain.node_version}; {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- **generic scenarios: {passing}/{len(judged)} pass**",
        "",
    ]
    for leg in LEGS:
        rows = [v for v in verdicts if v.leg == leg.name]
        if not rows:
            continue
        revision = leg.spec_version or "its default revision (2025-11-25)"
        lines += [
            f"### {leg.name}: {leg.package} at {revision}",
            "",
            "| scenario | result | checks passed | failures | warnings (SHOULD) | notes |",
            "|---|---|---|---|---|---|",
        ]
        order = {"fail": 0, "pass": 1, "n/a": 2, "info": 3}
        for v in sorted(rows, key=lambda v: order[v.status]):  # stable: keeps suite order
            result = {
                "pass": "PASS",
                "fail": "**FAIL**",
                "n/a": "n/a",
                "info": "not generic: " + ("passes" if not v.failures else "fails"),
            }[v.status]
            notes = [*v.excused, v.reason] if v.reason else v.excused
            failures = v.failures if v.status != "info" else v.failures[:1]
            lines.append(
                f"| {v.scenario} | {result} | {v.passed} | {_cell(failures)} "
                f"| {_cell(v.warnings)} | {_cell(notes)} |"
            )
        lines.append("")
    if problems:
        lines += ["### Catalogue drift", "", *(f"- {p}" for p in problems), ""]
    return "\n".join(lines)


def _version() -> str:
    try:
        return metadata.version("boxlite-mcp")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        toolchain = node_toolchain(install=not args.no_install)
    except Unavailable as exc:
        print(f"conformance: cannot run: {exc}", file=sys.stderr)
        return 2
    legs = [leg for leg in LEGS if not args.leg or leg.name in args.leg]
    only = set(args.scenario) if args.scenario else None
    results_cm: AbstractContextManager[str] = (
        nullcontext(str(args.results))
        if args.results
        else tempfile.TemporaryDirectory(prefix="conformance-")
    )
    with results_cm as results_dir:
        results = Path(results_dir)
        server: AbstractContextManager[str] = (
            nullcontext(args.url) if args.url else boxlite_server(args.runtime, results / "server")
        )
        verdicts: list[Verdict] = []
        problems: list[str] = []
        with server as url:
            facts = probe(url)
            for leg in legs:
                leg_verdicts, leg_problems = run_leg(
                    toolchain, leg, url, facts, results, args.all, only
                )
                verdicts += leg_verdicts
                problems += leg_problems
        command = command_line("conformance", argv)
        print(report(verdicts, problems, toolchain, args.runtime, url, command))
        if args.results:
            log.info("checks.json files kept under %s", args.results)
    if args.json:
        args.json.write_text(json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    failed = [v for v in verdicts if v.failed]
    for v in failed:
        print(f"FAIL {v.leg} {v.scenario}: " + "; ".join(v.failures), file=sys.stderr)
    return 1 if failed or problems else 0
