"""Markdown tables for the proof commands' reports."""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; cells are escaped (``|``) and kept on one line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
