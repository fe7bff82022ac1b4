"""``python -m tools.bench --quick`` end to end: it completes and produces every row with figures.

Behaviour, not timings: the figures themselves are whatever this machine gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.run import Plan, labels

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )
    return done, json.loads(out.read_text()) if out.exists() else {}


def test_quick_run_completes_and_prints_one_table_with_every_row(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, object]],
) -> None:
    done, _ = quick_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("### boxlite-mcp benchmarks (`python -m tools.bench --quick`")
    header = [i for i, line in enumerate(lines) if line.startswith("| what |")]
    assert len(header) == 1, "exactly one table"
    table = lines[header[0] + 2 :]
    assert len(table) == len(labels(Plan.quick()))
    assert all(line.startswith("| ") and line.endswith(" |") for line in table)
    for what in labels(Plan.quick()).values():
        assert any(line.startswith(f"| {what} |") for line in table), what


def test_machine_is_described(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, object]],
) -> None:
    done, _ = quick_run
    text = done.stdout
    for word in (
        "- CPU:",
        "- kernel:",
        "- Python ",
        "boxlite-mcp ",
        "mcp ",
        "boxlite ",
        "bubblewrap",
    ):
        assert word in text, word


def test_every_row_has_figures_and_goals_are_judged(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, object]],
) -> None:
    _, data = quick_run
    rows = {row["key"]: row for row in data["rows"]}  # type: ignore[attr-defined]
    assert list(rows) == list(labels(Plan.quick()))
    for key, row in rows.items():
        assert not row["ours"].startswith("not measured"), (key, row["ours"])
        assert any(ch.isdigit() for ch in row["ours"]), (key, row["ours"])
    compared = [
        "rest_rtt_010",
        "rest_flood_010",
        "bwrap_create",
        "bwrap_rtt",
        "mcp_exec",
        "mcp_throughput",
        "mcp_first_output",
        "scale_direct",
        "scale_rest",
    ]
    for key in compared:  # side by side: an alternative figure and a ratio
        assert any(ch.isdigit() for ch in rows[key]["alternative"]), key
        assert any(ch.isdigit() for ch in rows[key]["ratio"]), key
    judged = [
        "rest_rtt_010",
        "rest_flood_010",
        "mcp_overhead",
        "mcp_throughput",
        "mcp_rate",
        "mcp_first_output",
    ]
    for key in judged:  # a goal from DESIGN.md, met or missed: never left open
        assert rows[key]["goal"]["met"] in (True, False), key
