"""Column summaries: what a column looked like on each side, beside its drift statistic.

Part of ``stats`` (third stop on the data line), numbers only: a numeric column's mean,
spread and quantiles, read off sorted finite values (the reference's fitted profile, the
window's one sort); a categorical column's top categories with their shares and, for the
window, the categories the reference never saw. Bounded: at most ``TOP_CATEGORIES`` top
categories and ``NEW_CATEGORIES`` new ones are named (the counts say how many there were),
and names are cut at ``NAME_CHARS`` characters, so a status with many columns stays small.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.profile import CategoricalProfile, NumericProfile, moments, sorted_quantiles

#: Quantiles of a numeric summary: 5th, 25th, 50th (the median), 75th and 95th percentile.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: The most categories a summary names as top categories, and as new categories.
TOP_CATEGORIES = 5
NEW_CATEGORIES = 5
#: Category names longer than this are cut (and end in "...").
NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class NumericSummary:
    """Finite values of a numeric column (NaN for an empty column)."""

    count: int
    mean: float
    std: float
    """Population standard deviation."""
    minimum: float
    maximum: float
    quantiles: tuple[float, ...]
    """At ``QUANTILES``."""


@dataclass(frozen=True, slots=True)
class CategoricalSummary:
    """Categories of a categorical column, most frequent first."""

    count: int
    """Non-missing values."""
    categories: int
    """Distinct categories."""
    top: tuple[tuple[str, float], ...]
    """The ``TOP_CATEGORIES`` most frequent categories and their shares of ``count`` (ties
    by name)."""
    new: tuple[str, ...] = ()
    """Window only: the first ``NEW_CATEGORIES`` categories (by count, then name) the
    reference does not have."""
    new_count: int | None = None
    """Window only: how many categories the reference does not have (None: a reference
    summary)."""
    new_share: float | None = None
    """Window only: share of the values in those categories."""


AnySummary = NumericSummary | CategoricalSummary


def _cut(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 3] + "..."


def numeric_summary(sorted_values: NDArray[np.float64]) -> NumericSummary:
    """Summary of finite values in ascending order (mean and spread summed block by block,
    without a temporary the size of the column)."""
    count = int(sorted_values.size)
    if count == 0:
        nan = math.nan
        return NumericSummary(0, nan, nan, nan, nan, tuple(nan for _ in QUANTILES))
    mean, std = moments(sorted_values)
    return NumericSummary(count, mean, std, float(sorted_values[0]), float(sorted_values[-1]),
                          tuple(float(q) for q in sorted_quantiles(sorted_values, QUANTILES)))


def profile_summary(profile: NumericProfile) -> NumericSummary:
    """Summary of a fitted reference column: its fitted moments and range, and quantiles
    read off its sorted values (no pass over the column)."""
    if profile.n_present == 0:
        return numeric_summary(profile.sorted_values)
    grid = profile.quantiles
    if grid is not None:  # fitted from aggregates: the grid's nearest order statistics
        steps = grid.size - 1
        return NumericSummary(profile.n_present, profile.mean, profile.std, profile.minimum,
                              profile.maximum,
                              tuple(float(grid[round(q * steps)]) for q in QUANTILES))
    return NumericSummary(profile.n_present, profile.mean, profile.std, profile.minimum,
                          profile.maximum,
                          tuple(float(q) for q in sorted_quantiles(profile.sorted_values,
                                                                   QUANTILES)))


def _by_count(names: Collection[str], counts: NDArray[np.int64]) -> list[int]:
    """Indexes of ``names`` by count, largest first, ties by name."""
    listed = list(names)
    return sorted(range(len(listed)), key=lambda i: (-int(counts[i]), listed[i]))


def categorical_summary(profile: CategoricalProfile,
                        reference: CategoricalProfile | None = None) -> CategoricalSummary:
    """Summary of category counts; with ``reference``, the window's new categories too."""
    count = profile.n_present
    order = _by_count(profile.categories, profile.counts)
    top = tuple((_cut(profile.categories[i]), int(profile.counts[i]) / count)
                for i in order[:TOP_CATEGORIES]) if count else ()
    if reference is None:
        return CategoricalSummary(count, profile.n_unique, top)
    seen = set(reference.categories)
    new = [i for i in order if profile.categories[i] not in seen]
    new_values = sum(int(profile.counts[i]) for i in new)
    return CategoricalSummary(count, profile.n_unique, top,
                              tuple(_cut(profile.categories[i]) for i in new[:NEW_CATEGORIES]),
                              len(new), new_values / count if count else 0.0)
