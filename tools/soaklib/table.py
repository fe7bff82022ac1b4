"""Markdown tables for the proof commands' and the benchmark's reports."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, right: Collection[int] = ()
) -> str:
    """A Markdown table; cells are escaped (``|``) and kept on one line.

    ``right``: the indices of the columns aligned right (figures).
    """
    rule = "".join("---:|" if i in right else "---|" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", "|" + rule]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
