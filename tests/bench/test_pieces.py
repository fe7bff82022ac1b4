"""The benchmark's own pieces: percentiles, the table, and a failed part marking its rows."""

from __future__ import annotations

import pytest

from tools.bench.run import Plan, Results, section
from tools.bench.stats import Summary, percentile
from tools.bench.table import Goal, Row, render


def test_percentiles_are_observed_values() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    summary = Summary.of([5.0, 1.0, 3.0])
    assert (summary.n, summary.median, summary.p99) == (3, 3.0, 5.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_table_escapes_cells_and_shows_goal_verdicts() -> None:
    text = render(
        [
            Row("k", "a | b", "1 ms", "2 ms", "0.50", Goal("≤ 1.0", True)),
            Row("m", "c", "3", goal=Goal("≤ 2 ms", False)),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == "| what | this project | alternative | ratio | goal |"
    assert lines[2] == "| a \\| b | 1 ms | 2 ms | 0.50 | ≤ 1.0: **met** |"
    assert lines[3] == "| c | 3 | — | — | ≤ 2 ms: **MISSED** |"


def test_a_failed_part_marks_its_rows_and_the_run_goes_on() -> None:
    results = Results(Plan.quick())
    with section(results, "broken part", ["mcp_exec", "mcp_overhead"]):
        results.add("mcp_exec", "1 ms")
        raise RuntimeError("server would not start")
    assert results.rows["mcp_exec"].ours == "1 ms"  # measured before the failure: kept
    assert results.rows["mcp_overhead"].ours.startswith("not measured: RuntimeError: server")
    results.fail(list(results.labels), "its section did not run")
    assert [row.key for row in results.ordered()] == list(results.labels)
