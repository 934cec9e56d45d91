"""Small statistics: medians, percentiles, pair-by-pair ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def median(values: Sequence[float]) -> float:
    """The median, ``nan`` for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank]


def pair_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """``num[i] / den[i]`` for each repetition where both exist (``den`` > 0)."""
    return [n / d for n, d in zip(num, den, strict=False) if d > 0]


def pair_diffs(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] - b[i]`` for each repetition where both exist."""
    return [x - y for x, y in zip(a, b, strict=False)]


def ratio_lines(values: Mapping[str, float], unit: str) -> list[str]:
    """``"P1/P0: 1.234x unit"`` for every peer after the first, against the first."""
    base, *others = values
    return [f"{peer}/{base}: {values[peer] / values[base]:.3f}x {unit}" for peer in others]
