"""Window scoring: drift and data-quality figures of a current window against a fitted
reference.

Part of ``stats`` (third stop on the data line), second half of ``stats.dataset``:
``score_drift`` and ``data_quality`` read only the ``ReferenceProfile`` and the current
frame, one column at a time, so a check never copies the whole window. ``score_window``
does both in one pass: each current column is sorted or counted once (``CurrentColumn``)
and serves every drift method and every data-quality figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.dataset.reference import ColumnProfile, ReferenceProfile, Role, is_numeric
from modelmon.stats.dataset.threads import map_in_threads
from modelmon.stats.drift.base import Deferred, DriftResult, get_method, settle
from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    SortedFinite,
    as_float,
    fit_categorical,
    scratch,
    sorted_finite,
)
from modelmon.stats.summary import (
    AnySummary,
    categorical_summary,
    numeric_summary,
    profile_summary,
)


class CurrentColumn:
    """One column of the current window, prepared once for drift and data quality.

    Each form is computed on first use and kept: the values as float64 (a view of a float64
    column), its finite values in ascending order (the one sort of the column, shared by
    every numeric method and the data-quality counts; NaN and infinities are cut off its
    ends by binary search) and its category counts.

    ``buffer``, when given, receives the sorted values instead of a new array: a caller
    that prepares one column after the other passes the same buffer each time (and drops
    each column before the next), so the window's sorts reuse one block of memory.
    """

    __slots__ = ("_buffer", "_categories", "_numeric", "_sorted", "_values", "series")

    def __init__(self, series: pd.Series, buffer: NDArray[np.float64] | None = None) -> None:
        self.series = series
        self._buffer = buffer
        self._values: NDArray[np.float64] | None = None
        self._sorted: SortedFinite | None = None
        self._categories: CategoricalProfile | None = None
        self._numeric: bool | None = None

    @property
    def size(self) -> int:
        return len(self.series)

    def is_numeric(self) -> bool:
        if self._numeric is None:
            self._numeric = is_numeric(self.series)
        return self._numeric

    def values(self) -> NDArray[np.float64]:
        """The column as float64, missing values as NaN."""
        if self._values is None:
            self._values = as_float(self.series)
        return self._values

    def finite_sorted(self) -> NDArray[np.float64]:
        """The finite values in ascending order."""
        return self._sorted_column().values

    def _sorted_column(self) -> SortedFinite:
        if self._sorted is None:
            values = self.values()
            buffer = self._buffer
            fits = buffer is not None and buffer.size >= values.size
            self._sorted = sorted_finite(values, buffer if fits else None)
        return self._sorted

    def categories(self) -> CategoricalProfile:
        """The category counts (numbers compared as numbers, ``fit_categorical``;
        missing dropped)."""
        if self._categories is None:
            self._categories = fit_categorical(self.series)
        return self._categories

    def n_missing(self) -> int:
        """Missing values (None, NaN, NA), from whichever form is already at hand."""
        if self._categories is not None:
            return self._categories.n_missing
        if self.series.dtype == np.float64:
            if self._sorted is not None:
                return self._sorted.nan
            return int(np.count_nonzero(np.isnan(self.values())))
        return int(self.series.isna().sum())

    def count_outside(self, low: float, high: float) -> tuple[int, int]:
        """(values below ``low`` or above ``high``, non-missing values), infinities
        included: with the sorted finite values at hand two binary searches suffice."""
        if self._sorted is None:
            values = self.values()
            known = values[~np.isnan(values)]
            return int(np.count_nonzero((known < low) | (known > high))), int(known.size)
        kept, neg_inf, pos_inf, _ = self._sorted
        outside = int(np.searchsorted(kept, low, side="left")
                      + kept.size - np.searchsorted(kept, high, side="right"))
        # Infinities are outside unless a bound is infinite too.
        outside += (neg_inf if -np.inf < low else 0) + (pos_inf if np.inf > high else 0)
        return outside, self.size - self.n_missing()


def _column(current: pd.Series | CurrentColumn) -> CurrentColumn:
    return current if isinstance(current, CurrentColumn) else CurrentColumn(current)


def current_values(series: pd.Series | CurrentColumn, profile: ColumnProfile
                   ) -> NDArray[np.float64] | CategoricalProfile:
    """The current column in the shape the column's method scores: its finite values in
    ascending order (numeric) or its category counts."""
    column = _column(series)
    if profile.kind == "numeric":
        return column.finite_sorted()
    return column.categories()


def score_column(profile: ColumnProfile, series: pd.Series | CurrentColumn) -> DriftResult:
    """Drift of one current column against its reference profile."""
    return settle([score_or_defer(profile, series)])[0]


def score_or_defer(profile: ColumnProfile, series: pd.Series | CurrentColumn
                   ) -> DriftResult | Deferred:
    """``score_column``, or a score whose p-value waits to be computed with the window's
    other columns (``drift.base.settle``: the tied KS p-values are walked together)."""
    column = _column(series)
    method = profile.scorer
    if (profile.kind == "numeric" and not column.is_numeric()
            and column.series.notna().any()):
        return DriftResult(profile.method, None, None,
                           "not scored: the column is numeric in the reference but not in "
                           "the current window")
    ref = profile.numeric if profile.kind == "numeric" else profile.categorical
    current = current_values(column, profile)
    if (profile.method == "ztest" and profile.by_auto
            and isinstance(current, CategoricalProfile) and ref is not None
            and set(current.categories) - set(ref.categories)):  # type: ignore[union-attr]
        # auto picked the two-category test, but the window brought a third category.
        method = get_method("chisquare", "categorical")
    return method.score_or_defer(ref, current, prepared=True)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    name: str
    role: Role
    kind: FeatureKind
    result: DriftResult
    reference: AnySummary | None = None
    """The reference column, as the column is scored (``stats.summary``)."""
    current: AnySummary | None = None
    """The window's column, the same way (None when it cannot be read that way)."""


def summaries(profile: ColumnProfile, series: pd.Series | CurrentColumn
              ) -> tuple[AnySummary | None, AnySummary | None]:
    """(reference, current) summaries of a column, from the fitted profile and the forms
    of the window's column that scoring prepared (its sorted values or category counts)."""
    column = _column(series)
    if profile.kind == "numeric" and profile.numeric is not None:
        ref = profile_summary(profile.numeric)
        if column.is_numeric() or column.series.isna().all():
            return ref, numeric_summary(column.finite_sorted())
        return ref, None
    if profile.categorical is not None:
        return (categorical_summary(profile.categorical),
                categorical_summary(column.categories(), profile.categorical))
    return None, None


def _drift(name: str, profile: ColumnProfile, column: CurrentColumn
           ) -> tuple[ColumnDrift, Deferred | None]:
    """A column's drift, and its deferred score (whose p-value ``_settled`` fills in)."""
    score = score_or_defer(profile, column)
    result = score.result if isinstance(score, Deferred) else score
    drift = ColumnDrift(name, profile.request.role, profile.kind, result,
                        *summaries(profile, column))
    return drift, score if isinstance(score, Deferred) else None


def _settled(drifts: list[tuple[ColumnDrift, Deferred | None]]) -> list[ColumnDrift]:
    """The columns' drift with every deferred score completed (all at once)."""
    waiting = [(index, score) for index, (_, score) in enumerate(drifts) if score is not None]
    done = [drift for drift, _ in drifts]
    for (index, _), result in zip(waiting, settle([score for _, score in waiting]),
                                  strict=True):
        done[index] = dataclasses.replace(done[index], result=result)
    return done


def score_drift(reference: ReferenceProfile, current: pd.DataFrame, workers: int = 1
                ) -> list[ColumnDrift]:
    """Drift of every profiled column present in the current frame (``workers`` columns at
    once in threads when more than one)."""
    present = [(name, profile, current[name]) for name, profile in reference.columns.items()
               if name in current.columns]
    rows = len(current)

    def one(item: tuple[str, ColumnProfile, pd.Series]) -> tuple[ColumnDrift, Deferred | None]:
        name, profile, series = item
        column = CurrentColumn(series, scratch(rows, "sorted"))
        return _drift(name, profile, column)

    return _settled(map_in_threads(one, present, workers))


@dataclass(frozen=True, slots=True)
class ColumnQualityFigures:
    name: str
    missing_fraction: float
    outlier_fraction: float | None
    out_of_range_fraction: float | None
    new_categories: int | None


@dataclass(frozen=True, slots=True)
class QualityFigures:
    columns: list[ColumnQualityFigures]
    missing_columns: list[str]
    type_changes: list[tuple[str, str, str]]
    """(column, reference kind, current kind)."""


def column_quality(profile: ColumnProfile, series: pd.Series | CurrentColumn
                   ) -> ColumnQualityFigures:
    """Missing, outlier, out-of-range and new-category figures of one current column."""
    column = _column(series)
    size = column.size
    missing = float(column.n_missing()) / size if size else 0.0
    outliers = out_of_range = None
    new = None
    ref_num = profile.numeric
    if ref_num is not None and ref_num.n_present > 0 and column.is_numeric():
        beyond_fences, present = column.count_outside(ref_num.lower_fence,
                                                      ref_num.upper_fence)
        if present:
            beyond_range, _ = column.count_outside(ref_num.minimum, ref_num.maximum)
            outliers = float(beyond_fences) / present
            out_of_range = float(beyond_range) / present
        else:
            outliers = out_of_range = 0.0
    if profile.categorical is not None:
        seen = set(profile.categorical.categories)
        new = sum(1 for c in column.categories().categories if c not in seen)
    return ColumnQualityFigures(profile.name, missing, outliers, out_of_range, new)


def data_quality(reference: ReferenceProfile, current: pd.DataFrame) -> QualityFigures:
    """Data-quality figures of every profiled column, missing columns and type changes."""
    columns: list[ColumnQualityFigures] = []
    missing: list[str] = []
    changes: list[tuple[str, str, str]] = []
    for name, profile in reference.columns.items():
        if name not in current.columns:
            missing.append(name)
            continue
        column = CurrentColumn(current[name])
        change = _type_change(profile, column)
        if change is not None:
            changes.append(change)
        columns.append(column_quality(profile, column))
    return QualityFigures(columns, missing, changes)


def _type_change(profile: ColumnProfile, column: CurrentColumn) -> tuple[str, str, str] | None:
    cur_kind = "numeric" if column.is_numeric() else "categorical"
    # An all-null current column has no type of its own; do not call it a change.
    if cur_kind != profile.dtype_kind and column.n_missing() < column.size:
        return (profile.name, profile.dtype_kind, cur_kind)
    return None


FEATURES: tuple[Role, ...] = ("feature",)


@dataclass(frozen=True, slots=True)
class WindowScores:
    """Drift and data quality of one current window."""

    drift: list[ColumnDrift]
    quality: QualityFigures


class ColumnReader(Protocol):
    """A current window handed out one column at a time (for example read from a parquet
    file on demand), so that ``score_window`` holds one column of it at a time."""

    @property
    def columns(self) -> Collection[str]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, name: str) -> pd.Series: ...


def score_window(reference: ReferenceProfile, current: pd.DataFrame | ColumnReader,
                 quality_roles: Collection[Role] = FEATURES, workers: int = 1
                 ) -> WindowScores:
    """``score_drift`` and ``data_quality`` (of the columns with ``quality_roles``) in one
    pass: each current column is fetched, prepared once (its finite values sorted, or its
    categories counted), scored, checked, and released before the next, so a check costs
    one sort or count per column and holds one prepared column per worker at a time (and,
    given a ``ColumnReader``, one column of the window).

    ``workers`` > 1 scores that many columns at once in threads (numpy's sorts and searches
    release the GIL); the figures are the same and in the same order.
    """
    names = current.columns
    present = [(name, p) for name, p in reference.columns.items() if name in names]
    missing = [name for name, p in reference.columns.items()
               if name not in names and p.request.role in quality_roles]
    rows = len(current)

    def one(item: tuple[str, ColumnProfile]
            ) -> tuple[tuple[ColumnDrift, Deferred | None], ColumnQualityFigures | None,
                       tuple[str, str, str] | None]:
        name, profile = item
        # The sort of every column this thread prepares goes to the same memory.
        column = CurrentColumn(current[name], scratch(rows, "sorted"))
        drift = _drift(name, profile, column)
        if profile.request.role not in quality_roles:
            return drift, None, None
        return drift, column_quality(profile, column), _type_change(profile, column)

    results = map_in_threads(one, present, workers)
    return WindowScores(
        _settled([drift for drift, _, _ in results]),
        QualityFigures([q for _, q, _ in results if q is not None], missing,
                       [c for _, _, c in results if c is not None]))
