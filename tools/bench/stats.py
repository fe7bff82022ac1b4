"""Summaries of latency samples: median and nearest-rank percentiles, in milliseconds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was actually observed."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """What a table cell needs from a set of samples."""

    n: int
    median: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(len(samples), statistics.median(samples), percentile(samples, 99))

    def ms(self, p99: bool = True) -> str:
        """``12.3 ms (p99 20.1)``."""
        text = f"{ms(self.median)} ms"
        return f"{text} (p99 {ms(self.p99)})" if p99 else text


def ms(value: float) -> str:
    """Milliseconds with sensible precision: 0.412, 4.12, 41.2, 412."""
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else math.inf


def fmt_ratio(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"
