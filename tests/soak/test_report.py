"""The lines every proof command prints around its tables (``tools/soaklib/report.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tools.soaklib.report import command_line, print_report


def test_the_command_line_is_quoted_as_a_shell_takes_it() -> None:
    assert (
        command_line("leak_soak", ["--ttl", "2", "a b", "it's"])
        == "python -m tools.leak_soak --ttl 2 'a b' 'it'\"'\"'s'"
    )


def test_without_arguments_the_command_line_is_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["run.py", "--quick"])
    assert command_line("hostile_fuzz", None) == "python -m tools.hostile_fuzz --quick"
    assert command_line("hostile_fuzz", []) == "python -m tools.hostile_fuzz"


def test_the_report_names_the_machine_and_kept_files_only_when_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    print_report("| table |", 0.5, None)
    dropped = capsys.readouterr().out
    print_report("| table |", 0.5, tmp_path)
    kept = capsys.readouterr().out
    assert dropped.startswith("| table |\n\n") and "load average" in dropped.lower()
    assert "kept" not in dropped
    assert kept.endswith(f"\nhomes and logs kept in {tmp_path}\n")
