"""Shapes: what a plot of reference against current needs of one column, as counts.

Part of ``stats`` (third stop on the data line), beside ``dataset.window``: from a fitted
``ReferenceProfile`` and the current frame, one ``ColumnShape`` per profiled column, small
and of bounded size whatever the data's size. A numeric column gives counts of both sides
in the same equal-width bins (over every value, or over the middle 99% of either side's
values when a few lie far out, which are then counted, not drawn); a categorical one the
counts of the most common categories of either side, and the categories only one side
has. Numbers and names only: which column drifted is decided in ``evaluation``, and how
it is drawn in ``outputs.report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.dataset.reference import ColumnProfile, ReferenceProfile, Role, is_numeric
from modelmon.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    align,
    as_float,
    finite,
    fit_categorical,
    sorted_quantiles,
)

#: Equal-width bins of a numeric column's plot.
SHAPE_BINS = 30
#: Share of values each side may leave outside the plotted range at either end: the range
#: spans both sides' values from this quantile to its complement, so that one wild value
#: does not squeeze the rest into one bin.
TAIL = 0.005
#: How much wider than the middle 99% of the values the whole range may be and still be
#: drawn whole (a normal sample's whole range is under twice as wide as its middle 99%).
SPREAD = 3.0
#: Categories drawn per column (the most common of either side); the rest are added up.
TOP_CATEGORIES = 20
#: Names kept of the categories that only one side has (their count is kept whole).
NAMED_CATEGORIES = 20


@dataclass(frozen=True, slots=True)
class Side:
    """One side's counts outside the bins: finite values beyond either end of the plotted
    range, and missing values (NaN and the infinities for a numeric column)."""

    present: int
    missing: int
    below: int = 0
    above: int = 0


@dataclass(frozen=True, slots=True)
class NumericShape:
    """Counts of both sides in the same bins; ``edges`` has one more entry than either."""

    edges: NDArray[np.float64]
    reference: NDArray[np.int64]
    current: NDArray[np.int64]
    reference_side: Side
    current_side: Side


@dataclass(frozen=True, slots=True)
class CategoricalShape:
    """Counts of the categories drawn (the most common of either side, in descending order
    of the larger share), the rest of each side added up, and the categories that only the
    current window (``new``) or only the reference (``vanished``) has: the first
    ``NAMED_CATEGORIES`` by count, and how many there are."""

    categories: tuple[str, ...]
    reference: NDArray[np.int64]
    current: NDArray[np.int64]
    reference_other: int
    current_other: int
    new: tuple[str, ...]
    new_count: int
    vanished: tuple[str, ...]
    vanished_count: int
    reference_side: Side
    current_side: Side


Shape = NumericShape | CategoricalShape


@dataclass(frozen=True, slots=True)
class ColumnShape:
    """The shape of one profiled column, or why it has none (absent from the window, or of
    another kind there)."""

    name: str
    role: Role
    shape: Shape | None
    reason: str | None = None


def _range(reference: NDArray[np.float64], current: NDArray[np.float64]
           ) -> tuple[float, float]:
    """The plotted range: every value of both sides (sorted reference, unsorted current),
    unless that is more than ``SPREAD`` times as wide as the span from the lower to the
    upper ``TAIL`` quantile of either side, which it then is; widened when every value is
    the same."""
    ends: list[float] = []
    full: list[float] = []
    if reference.size:
        ends.extend(float(q) for q in sorted_quantiles(reference, [TAIL, 1 - TAIL]))
        full.extend((float(reference[0]), float(reference[-1])))
    if current.size:
        ends.extend(float(q) for q in np.quantile(current, [TAIL, 1 - TAIL]))
        full.extend((float(current.min()), float(current.max())))
    low, high = min(ends), max(ends)
    if max(full) - min(full) <= SPREAD * (high - low):
        low, high = min(full), max(full)
    if high <= low:
        pad = max(abs(low) * 0.05, 0.5)
        low, high = low - pad, high + pad
    return low, high


def numeric_shape(profile: NumericProfile, series: pd.Series | None,
                  bins: int = SHAPE_BINS) -> NumericShape | None:
    """Both sides binned alike; None when neither side has a finite value."""
    ref = profile.sorted_values
    raw = as_float(series) if series is not None else np.empty(0, dtype=np.float64)
    cur = finite(raw)
    if ref.size == 0 and cur.size == 0:
        return None
    low, high = _range(ref, cur)
    edges = np.linspace(low, high, bins + 1)
    # A value on an inner edge falls in the bin above it and the top edge closes the last
    # bin, as np.histogram counts the current side.
    ends = np.searchsorted(ref, edges, "left")
    ends[-1] = np.searchsorted(ref, high, "right")
    ref_counts = np.diff(ends).astype(np.int64)
    cur_counts, _ = np.histogram(cur, bins=edges)
    return NumericShape(
        edges=edges, reference=ref_counts, current=cur_counts.astype(np.int64),
        reference_side=Side(int(ref.size), profile.n_missing, int(ends[0]),
                            int(ref.size - ends[-1])),
        current_side=Side(int(cur.size), int(raw.size - cur.size),
                          int(np.count_nonzero(cur < low)), int(np.count_nonzero(cur > high))))


def _named(names: tuple[str, ...], counts: NDArray[np.int64], picked: NDArray[np.bool_]
           ) -> tuple[str, ...]:
    """The first ``NAMED_CATEGORIES`` of the picked categories, most common first."""
    index = np.flatnonzero(picked)
    order = index[np.argsort(-counts[index], kind="stable")][:NAMED_CATEGORIES]
    return tuple(names[i] for i in order)


def categorical_shape(profile: CategoricalProfile, series: pd.Series | None,
                      top: int = TOP_CATEGORIES) -> CategoricalShape:
    """The most common categories of both sides and those only one side has."""
    current = (fit_categorical(series) if series is not None
               else CategoricalProfile((), np.zeros(0, dtype=np.int64), 0, 0))
    ref, cur, names = align(profile, current)
    ref_share = ref / max(profile.n_present, 1)
    cur_share = cur / max(current.n_present, 1)
    order = np.argsort(-np.maximum(ref_share, cur_share), kind="stable")[:top]
    new, vanished = (ref == 0) & (cur > 0), (ref > 0) & (cur == 0)
    return CategoricalShape(
        categories=tuple(names[i] for i in order),
        reference=ref[order], current=cur[order],
        reference_other=int(ref.sum() - ref[order].sum()),
        current_other=int(cur.sum() - cur[order].sum()),
        new=_named(names, cur, new), new_count=int(new.sum()),
        vanished=_named(names, ref, vanished), vanished_count=int(vanished.sum()),
        reference_side=Side(profile.n_present, profile.n_missing),
        current_side=Side(current.n_present, current.n_missing))


def column_shape(profile: ColumnProfile, series: pd.Series | None) -> ColumnShape:
    """The shape of one column as it was scored (numeric or categorical); ``series``: the
    current column, None when the window lacks it."""
    name, role = profile.name, profile.request.role
    if series is None:
        return ColumnShape(name, role, None, "the current window has no such column")
    if profile.kind == "categorical" and profile.categorical is not None:
        return ColumnShape(name, role, categorical_shape(profile.categorical, series))
    if profile.numeric is None:
        return ColumnShape(name, role, None, "the reference has no values to plot")
    if not is_numeric(series) and series.notna().any():
        return ColumnShape(name, role, None,
                           "numeric in the reference but not in the current window")
    shape = numeric_shape(profile.numeric, series)
    return ColumnShape(name, role, shape,
                       None if shape is not None else "neither side has a finite value")


def window_shapes(reference: ReferenceProfile, current: pd.DataFrame | Mapping[str, pd.Series]
                  ) -> dict[str, ColumnShape]:
    """The shape of every profiled column, in the profile's order."""
    present = set(current.columns) if isinstance(current, pd.DataFrame) else set(current)
    return {name: column_shape(profile, current[name] if name in present else None)
            for name, profile in reference.columns.items()}
