"""The table of known equivalent mutants, read from a Markdown file.

Equivalent mutants (the mutated code behaves exactly like the original, or
differs only in a way no caller can observe) can never be killed, so the score
that counts is over the others. They are listed, each with a one-line reason,
in a Markdown table, so the list the runner reads is the same one a reviewer
reads in ``docs/mutation.md``. Any row of a table whose header starts
``| module | mutant |`` and whose first cell names a ``.py`` file is an entry
(other tables, such as results per module, are ignored)::

    | module | mutant | line | why it is equivalent |
    |---|---|---|---|
    | `pkg/mod.py` | `NumberReplacer#2` | `CHUNK = 256 * 1024` | read size only |

The mutant cell is the operator as the runner prints it (``#n`` for the n-th
such mutant on identical lines); the line cell is the stripped source line, in
backticks, with ``|`` written as ``\\|``. The runner prints a ready row for each
survivor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_LABEL = re.compile(r"^(?P<op>[A-Za-z_][\w/]*)(?:#(?P<nth>[1-9]\d*))?$")


class EquivalentsError(ValueError):
    """A row of the equivalents table cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Equivalent:
    """One known equivalent mutant and why it is equivalent."""

    module: str
    operator: str  # cosmic-ray operator name (with ``core/``)
    code: str
    nth: int
    reason: str
    where: str  # file:line of the row, for messages

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.module, self.operator, self.code, self.nth)


def _unquote(cell: str) -> str:
    cell = cell.strip().replace("\\|", "|")
    for tick in ("``", "`"):
        if len(cell) >= 2 * len(tick) and cell.startswith(tick) and cell.endswith(tick):
            return cell[len(tick) : -len(tick)].strip()
    return cell


def parse(text: str, source: str = "<equivalents>") -> list[Equivalent]:
    """Every entry of every table in ``text``; other lines are ignored."""
    entries = []
    header: list[str] | None = None  # the header of the table the line is in, if any
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [_unquote(c) for c in _CELL_SPLIT.split(line.strip("|"))]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if header[:2] != ["module", "mutant"] or not cells or not cells[0].endswith(".py"):
            continue
        where = f"{source}:{number}"
        if len(cells) != 4:
            raise EquivalentsError(
                f"{where}: an equivalent-mutant row needs 4 cells "
                f"(module | mutant | line | reason), got {len(cells)}: {raw.strip()}"
            )
        module, label, code, reason = cells
        match = _LABEL.match(label)
        if match is None:
            raise EquivalentsError(
                f"{where}: mutant {label!r} is not an operator name such as "
                "'NumberReplacer' or 'NumberReplacer#2'"
            )
        if not reason:
            raise EquivalentsError(f"{where}: mutant {label} of {module} needs a reason")
        op = match["op"]
        entries.append(
            Equivalent(
                module=module,
                operator=op if "/" in op else f"core/{op}",
                code=code,
                nth=int(match["nth"] or 1),
                reason=reason,
                where=where,
            )
        )
    return entries


def load(path: Path) -> list[Equivalent]:
    """Read the equivalents table from ``path`` (a Markdown file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EquivalentsError(
            f"cannot read the equivalents file {path}: {exc.strerror or exc}"
        ) from exc
    return parse(text, str(path))


def row(module: str, label: str, code: str) -> str:
    """A table row for a survivor, with the reason left for a human to write."""
    escaped = code.replace("|", "\\|")
    cell = f"`` {escaped} ``" if "`" in escaped else f"`{escaped}`"
    return f"| `{module}` | `{label}` | {cell} | WHY |"
