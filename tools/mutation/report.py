"""Turn mutant results into the numbers and the survivor list a reader acts on.

Timed-out mutants count as detected (the tests did not pass with them). Mutants
cosmic-ray could not apply are shown but left out of both scores. Equivalents
are matched by :attr:`Mutant.key`; an entry that matches a *killed* mutant, or
no mutant at all, is reported so the table never silently goes stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .equivalents import Equivalent, row
from .runner import Result, Status


@dataclass
class Summary:
    module: str
    results: Sequence[Result]
    equivalents: Sequence[Equivalent]
    killed: int = 0
    timed_out: int = 0
    errors: int = 0
    survivors: list[Result] = field(default_factory=list)
    equivalent_survivors: list[tuple[Result, Equivalent]] = field(default_factory=list)
    listed_but_killed: list[tuple[Result, Equivalent]] = field(default_factory=list)
    stale: list[Equivalent] = field(default_factory=list)

    @property
    def detected(self) -> int:
        return self.killed + self.timed_out

    @property
    def judged(self) -> int:
        """Mutants that were applied and tested."""
        return len(self.results) - self.errors

    @property
    def non_equivalent(self) -> int:
        return self.judged - len(self.equivalent_survivors)

    @property
    def score(self) -> float:
        """Percent of non-equivalent mutants detected (100 when there are none)."""
        return 100.0 * self.detected / self.non_equivalent if self.non_equivalent else 100.0


def summarise(module: str, results: Sequence[Result], equivalents: Sequence[Equivalent]) -> Summary:
    mine = {e.key: e for e in equivalents if e.module == module}
    summary = Summary(module, results, equivalents)
    matched: set[tuple[str, str, str, int]] = set()
    for result in results:
        entry = mine.get(result.mutant.key)
        if entry is not None:
            matched.add(entry.key)
        if result.status is Status.ERROR:
            summary.errors += 1
        elif result.status is Status.SURVIVED:
            if entry is None:
                summary.survivors.append(result)
            else:
                summary.equivalent_survivors.append((result, entry))
        else:
            if result.status is Status.KILLED:
                summary.killed += 1
            else:
                summary.timed_out += 1
            if entry is not None:
                summary.listed_but_killed.append((result, entry))
    summary.stale = [e for k, e in mine.items() if k not in matched]
    return summary


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def render(summary: Summary, source: str, *, ran_all: bool = True) -> str:
    """The report: counts, score, then every survivor with its diff and a table row."""
    s = summary
    survived = len(s.survivors) + len(s.equivalent_survivors)
    out = [
        f"module {s.module}: {len(s.results)} mutants",
        f"  killed     {s.killed:5d}",
        f"  timed out  {s.timed_out:5d}",
        f"  survived   {survived:5d}  ({len(s.equivalent_survivors)} known equivalent, "
        f"{len(s.survivors)} not)",
    ]
    if s.errors:
        out.append(f"  not applied {s.errors:4d}  (left out of the score)")
    out.append(
        f"score: {s.detected}/{s.judged} = {_pct(s.detected, s.judged)} of all mutants; "
        f"{s.detected}/{s.non_equivalent} = {_pct(s.detected, s.non_equivalent)} "
        "of non-equivalent mutants"
    )
    if s.survivors:
        out += ["", "Survivors (no test noticed these; kill them or list them as equivalent):"]
        for result in s.survivors:
            m = result.mutant
            out.append(f"L{m.line} {m.definition or '<module>'}: {m.label}")
            out += [f"    {line}" for line in m.diff(source)]
            out.append(f"    {row(m.module, m.label, m.code)}")
    if s.listed_but_killed:
        out += ["", "Listed as equivalent but killed (remove these rows):"]
        out += [
            f"  {e.where}: L{r.mutant.line} {e.operator} `{e.code}`" for r, e in s.listed_but_killed
        ]
    if s.stale and ran_all:
        out += ["", "Listed as equivalent but no such mutant (stale rows; remove or update):"]
        out += [f"  {e.where}: {e.operator}#{e.nth} `{e.code}`" for e in s.stale]
    errors = [r for r in s.results if r.status is Status.ERROR]
    if errors:
        out += ["", "Not applied:"]
        out += [f"  L{r.mutant.line} {r.mutant.label}: {r.detail}" for r in errors]
    return "\n".join(out)
