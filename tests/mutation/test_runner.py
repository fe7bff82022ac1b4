"""The mutation runner on a tiny project whose mutants are known in advance.

``clamp`` has two mutants under the default operators: ``not`` added to the
``if`` (killed by the tests) and ``>`` turned into ``>=`` (equivalent: at
``x == top`` both branches return the same value). The runner is run as a real
subprocess, the way a developer runs it, against real pytest runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tools.mutation.equivalents import EquivalentsError, parse, row

REPO = Path(__file__).resolve().parents[2]

TINY = '''\
"""A module with one killable and one equivalent mutant."""


def clamp(x: int, top: int | None) -> int:
    if x > top:
        return top
    return x
'''

TINY_TEST = """\
from pkg.tiny import clamp


def test_clamp() -> None:
    assert clamp(5, 3) == 3
    assert clamp(1, 3) == 1
"""

LOOP = """\
def count_up(n: int) -> int:
    i = 0
    while i < n:
        i = i + 1
    return i
"""

LOOP_TEST = """\
from pkg.loop import count_up


def test_count_up() -> None:
    assert count_up(3) == 3
"""

EQUIVALENT_ROW = (
    "| `pkg/tiny.py` | `ReplaceComparisonOperator_Gt_GtE` | `if x > top:` "
    "| at x == top both branches return the same value |"
)


def make_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/tiny.py").write_text(TINY)
    (root / "pkg/loop.py").write_text(LOOP)
    (root / "tests").mkdir()
    (root / "tests/test_tiny.py").write_text(TINY_TEST)
    (root / "tests/test_loop.py").write_text(LOOP_TEST)
    return root


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "tools.mutation", *args, "--project", str(project)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reports_the_killed_and_the_surviving_mutant(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    before = tree_digest(project)
    done = run(
        project,
        "pkg/tiny.py",
        "--tests",
        "tests/test_tiny.py",
        "--equivalents",
        "none",
        "--min-score",
        "90",
    )
    out = done.stdout
    assert "module pkg/tiny.py: 2 mutants" in out
    assert "killed         1" in out
    assert "survived       1  (0 known equivalent, 1 not)" in out
    assert "1/2 = 50.0% of non-equivalent mutants" in out
    # The survivor is shown with its line, its diff and a row to paste.
    assert "L5 clamp: ReplaceComparisonOperator_Gt_GtE" in out
    assert "-    if x > top:" in out and "+    if x >= top:" in out
    assert "| `pkg/tiny.py` | `ReplaceComparisonOperator_Gt_GtE` | `if x > top:` | WHY |" in out
    # The annotation `int | None` is never mutated (never evaluated under __future__).
    assert "BitOr" not in out + done.stderr
    # A real survivor fails the run under --min-score.
    assert done.returncode == 1
    assert "score 50.0% is below --min-score 90.0%" in done.stderr
    assert tree_digest(project) == before, "the runner changed the working tree"


def test_known_equivalent_mutants_leave_the_score(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    table = tmp_path / "mutation.md"
    table.write_text(
        "# Mutation\n\n| module | mutant | line | why |\n|---|---|---|---|\n"
        f"{EQUIVALENT_ROW}\n"
        "| `pkg/tiny.py` | `AddNot` | `if x > top:` | wrongly listed |\n"
        "| `pkg/tiny.py` | `AddNot` | `if gone:` | the code changed |\n"
    )
    done = run(
        project,
        "pkg/tiny.py",
        "--tests",
        "tests/test_tiny.py",
        "--equivalents",
        str(table),
        "--min-score",
        "90",
        "--workers",
        "1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "survived       1  (1 known equivalent, 0 not)" in out
    assert "1/1 = 100.0% of non-equivalent mutants" in out
    assert "Survivors" not in out
    # Rows that no longer describe an equivalent mutant are pointed out.
    assert "Listed as equivalent but killed (remove these rows):" in out
    assert f"{table}:6: L5 core/AddNot `if x > top:`" in out
    assert "stale rows" in out and "`if gone:`" in out


def test_a_hanging_mutant_is_timed_out_and_counts_as_detected(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    done = run(
        project,
        "pkg/loop.py",
        "--tests",
        "tests/test_loop.py",
        "--equivalents",
        "none",
        "--operators",
        "ReplaceBinaryOperator_Add_Sub",
        "--timeout",
        "4",
    )
    assert done.returncode == 0, done.stderr
    assert "timed out      1" in done.stdout
    assert "1/1 = 100.0% of non-equivalent mutants" in done.stdout


def test_tests_failing_without_mutants_stop_the_run(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    (project / "tests/test_tiny.py").write_text(TINY_TEST + "    assert clamp(9, 3) == 9\n")
    done = run(project, "pkg/tiny.py", "--tests", "tests/test_tiny.py")
    assert done.returncode == 2
    assert "the tests fail without any mutant" in done.stderr
    assert "Traceback" not in done.stderr.split("Command:")[0]


def test_bad_input_says_what_to_do(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    for args, message in [
        (["pkg/nope.py", "--tests", "tests"], "module 'pkg/nope.py' is not a Python file"),
        (["pkg/tiny.py", "--tests", "tests/nope.py"], "test path(s) tests/nope.py not found"),
        (
            ["pkg/tiny.py", "--tests", "tests", "--operators", "Bogus"],
            "unknown mutation operator(s) Bogus",
        ),
        (["pkg/tiny.py", "--tests", "tests", "--lines", "x-2"], "--lines 'x-2' is not a line"),
        (
            ["pkg/tiny.py", "--tests", "tests", "--equivalents", str(tmp_path / "no.md")],
            "cannot read the equivalents file",
        ),
    ]:
        done = run(project, *args)
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_equivalents_table_parsing() -> None:
    entries = parse(
        "text | not a row\n"
        "| module | mutant | line | why |\n|---|---|---|---|\n"
        "| `a/b.py` | `NumberReplacer#2` | `x = a \\| b` | only a read size |\n"
        '| a/c.py | core/AddNot | ``s = "`"`` | reason |\n'
    )
    assert [(e.module, e.operator, e.nth, e.code) for e in entries] == [
        ("a/b.py", "core/NumberReplacer", 2, "x = a | b"),
        ("a/c.py", "core/AddNot", 1, 's = "`"'),
    ]
    header = "| module | mutant | line | why |\n|---|---|---|---|\n"
    pasted = row("a/b.py", "AddNot", "x = a | b").replace("WHY", "r")
    assert parse(header + pasted)[0].code == "x = a | b"
    tick = row("a/b.py", "AddNot", "s = '`'").replace("WHY", "r")
    assert parse(header + tick)[0].code == "s = '`'"
    # Only tables headed "module | mutant" list equivalents; a results table is not one.
    results = "| module | mutants | killed |\n|---|---:|---:|\n| `a/b.py` | 3 | 3 |\n"
    assert parse(results + "\n" + header + pasted)[0].module == "a/b.py"
    assert parse(results) == []
    assert parse(pasted) == []
    for bad, message in [
        ("| `a.py` | `AddNot` | `x` |  |", "needs a reason"),
        ("| `a.py` | `Add Not` | `x` | r |", "is not an operator name"),
        ("| `a.py` | `AddNot` | `x` |", "needs 4 cells"),
    ]:
        try:
            parse(header + bad, "t.md")
        except EquivalentsError as exc:
            assert message in str(exc) and "t.md:3" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
