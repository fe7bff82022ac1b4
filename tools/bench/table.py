"""The result table: one row per measurement, rendered as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tools.soaklib.table import render as markdown_table

HEADER = ("what", "this project", "alternative", "ratio", "goal")


@dataclass(frozen=True)
class Goal:
    """A goal from DESIGN.md and whether this run met it (None: no goal, or not measured)."""

    text: str
    met: bool | None = None

    def render(self) -> str:
        if self.met is None:
            return self.text
        return f"{self.text}: **{'met' if self.met else 'MISSED'}**"


NO_GOAL = Goal("—")


@dataclass(frozen=True)
class Row:
    key: str  # stable id, for tests and for reading the table by machine
    what: str
    ours: str
    alternative: str = "—"
    ratio: str = "—"
    goal: Goal = NO_GOAL

    def cells(self) -> tuple[str, ...]:
        return (self.what, self.ours, self.alternative, self.ratio, self.goal.render())


def failed(key: str, what: str, error: str) -> Row:
    """A row whose measurement could not be taken: says why instead of a number."""
    return Row(key, what, f"not measured: {error}", goal=Goal("—", None))


def render(rows: Sequence[Row]) -> str:
    """The table, the ratio column aligned right."""
    return markdown_table(HEADER, [row.cells() for row in rows], right={HEADER.index("ratio")})
