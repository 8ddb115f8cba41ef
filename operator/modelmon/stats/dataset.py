"""Whole-dataset statistics: fit a reference once, then score current windows against it.

Part of ``stats`` (third stop on the data line). ``fit_reference`` turns the reference frame
into a ``ReferenceProfile`` (one profile per monitored column, plus its kind); ``score_drift``
and ``data_quality`` read only the profile and the current frame, one column at a time, so a
check never re-sorts or re-bins the reference and never copies the whole window.
``score_window`` does both in one pass: each current column is sorted or counted once
(``CurrentColumn``) and serves every drift method and every data-quality figure.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.drift import auto_method
from modelmon.stats.drift.base import (
    AnyMethod,
    DriftResult,
    NumericMethod,
    UnknownMethodError,
    get_method,
    method_names,
)
from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    SortedFinite,
    as_float,
    fit_categorical,
    fit_numeric,
    scratch,
    sorted_finite,
)

#: Numeric columns with at most this many distinct reference values are scored as
#: categorical under ``auto`` (the same cut-off as the auto rule's "more than 5 values").
LOW_CARDINALITY = 5

Role = Literal["feature", "prediction", "target"]


class ColumnSpecError(ValueError):
    """A column's configured method or kind cannot work; the message names the column."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True, slots=True)
class ColumnRequest:
    """What the spec asks of one column."""

    name: str
    role: Role = "feature"
    method: str = "auto"
    threshold: float | None = None
    categorical: bool = False
    """Declared categorical in the spec."""


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """A fitted reference column and how it will be scored."""

    request: ColumnRequest
    dtype_kind: FeatureKind
    """Kind of the data itself: numeric when the values are numbers."""
    kind: FeatureKind
    """Kind it is scored as."""
    method: str
    numeric: NumericProfile | None
    categorical: CategoricalProfile | None
    scorer: AnyMethod
    """The registered method named ``method`` for ``kind``, looked up once at fit."""

    @property
    def name(self) -> str:
        return self.request.name


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Everything a check keeps of the reference data."""

    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)


def is_numeric(series: pd.Series) -> bool:
    """Numbers (not booleans) count as numeric."""
    kind = series.dtype.kind
    if kind in "iuf":
        return True
    if kind in "bOSUMm":
        return False
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def fit_column(series: pd.Series, request: ColumnRequest, reference_rows: int,
               sortable: NDArray[np.float64] | None = None) -> ColumnProfile:
    """Fit one reference column and pick its kind and method. ``sortable``: the column's
    own float64 values, which the caller gives up to be sorted in place."""
    dtype_kind: FeatureKind = "numeric" if is_numeric(series) else "categorical"
    numeric = None
    if dtype_kind == "numeric":
        numeric = (fit_numeric(series) if sortable is None
                   else fit_numeric(sortable, in_place=True))
    method = request.method
    if request.categorical or dtype_kind == "categorical":
        kind: FeatureKind = "categorical"
    elif method == "auto":
        assert numeric is not None
        kind = "numeric" if numeric.n_unique > LOW_CARDINALITY else "categorical"
    elif method in method_names("numeric"):
        kind = "numeric"
    else:
        kind = "categorical"  # a categorical-only method on numbers: values are categories
    categorical = fit_categorical(series) if kind == "categorical" else None
    if method == "auto":
        unique = categorical.n_unique if categorical is not None else (
            numeric.n_unique if numeric is not None else 0)
        method = auto_method(kind, reference_rows, unique)
    try:
        scorer = get_method(method, kind)
    except UnknownMethodError as exc:
        raise ColumnSpecError(f"column {request.name!r} is {kind}: {exc}",
                              request.name) from None
    # The method keeps what it needs of its reference (KS: a rank grid), once.
    if isinstance(scorer, NumericMethod):
        numeric = scorer.fit(numeric) if numeric is not None else None
    elif categorical is not None:
        categorical = scorer.fit(categorical)
    return ColumnProfile(request, dtype_kind, kind, method, numeric, categorical, scorer)


def fit_reference(frame: pd.DataFrame, requests: Iterable[ColumnRequest], workers: int = 1,
                  *, consume: bool = False) -> ReferenceProfile:
    """Fit every requested column of the reference frame (``workers`` columns at once in
    threads when more than one).

    ``consume=True`` hands the frame over (the caller loaded it for this fit and drops it
    after): a numeric column whose float64 values the frame alone holds, writable, is
    sorted where it is and kept by the profile without a copy (``sortable_columns``); any
    other fitted column is deleted from the frame once fitted, so that it is released as
    the profile's copy is made (arrow-backed columns, as ``modelmon check`` reads parquet).
    Either way the frame and the profile never hold a column twice; the frame's contents
    are then undefined. Without it the frame is never modified.
    """
    rows = len(frame)
    requests = list(requests)
    if not consume:
        items = [(frame[r.name], r) for r in requests]
        fitted = _map(lambda item: fit_column(item[0], item[1], rows), items, workers)
        return ReferenceProfile(rows=rows, columns={c.name: c for c in fitted})
    counts = Counter(r.name for r in requests)
    once = {name for name, k in counts.items() if k == 1 and _unique(frame, name)}
    sortable = sortable_columns(frame, once)
    lock = threading.Lock()

    def fit(request: ColumnRequest) -> ColumnProfile:
        with lock:
            series = frame[request.name]
            in_place = sortable.pop(request.name, None)
        fitted = fit_column(series, request, rows, in_place)
        del series
        if request.name in once and in_place is None:  # the profile holds a copy
            with lock:
                del frame[request.name]
        return fitted

    done = _map(fit, requests, workers)
    return ReferenceProfile(rows=rows, columns={c.name: c for c in done})


def _unique(frame: pd.DataFrame, name: str) -> bool:
    return isinstance(frame.columns.get_loc(name), int)


def sortable_columns(frame: pd.DataFrame, names: Collection[str]
                     ) -> dict[str, NDArray[np.float64]]:
    """The columns among ``names`` that may be sorted in the frame's own memory: float64
    numpy columns that pandas says nothing else references (its copy-on-write
    bookkeeping: no other frame, series or view shares the block), in writable memory (not
    an arrow buffer), whose block holds only columns among ``names`` and is no view of a
    larger array (so a profile keeping them keeps nothing else alive). Each as a view of
    the frame's block; none when this pandas lacks the bookkeeping."""
    out: dict[str, NDArray[np.float64]] = {}
    try:
        manager = frame._mgr
        blknos, blklocs, blocks = manager.blknos, manager.blklocs, manager.blocks
        has_no_reference = manager._has_no_reference
        columns = frame.columns
        for name in names:
            loc = columns.get_loc(name)
            if not isinstance(loc, int) or not has_no_reference(loc):
                continue
            block = blocks[blknos[loc]]
            values = block.values
            base = getattr(values, "base", None)
            if (not isinstance(values, np.ndarray) or values.dtype != np.float64
                    or not values.flags.writeable
                    or (isinstance(base, np.ndarray) and base.nbytes > values.nbytes)
                    or any(columns[i] not in names for i in block.mgr_locs.as_array)):
                continue
            out[name] = values[blklocs[loc]] if values.ndim == 2 else values
    except (AttributeError, TypeError, IndexError):  # another pandas: copy instead
        return {}
    return out


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
        """The category counts (values compared as strings, missing dropped)."""
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
            ok = values[~np.isnan(values)]
            return int(np.count_nonzero((ok < low) | (ok > high))), int(ok.size)
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
    column = _column(series)
    method = profile.scorer
    if (profile.kind == "numeric" and not column.is_numeric()
            and column.series.notna().any()):
        return DriftResult(profile.method, None, None, _threshold(profile), False,
                           "not scored: the column is numeric in the reference but not in "
                           "the current window")
    ref = profile.numeric if profile.kind == "numeric" else profile.categorical
    current = current_values(column, profile)
    if (profile.method == "ztest" and profile.request.method == "auto"
            and isinstance(current, CategoricalProfile) and ref is not None
            and set(current.categories) - set(ref.categories)):  # type: ignore[union-attr]
        # auto picked the two-category test, but the window brought a third category.
        method = get_method("chisquare", "categorical")
    return method.score(ref, current, profile.request.threshold,  # type: ignore[arg-type]
                        prepared=True)


def _threshold(profile: ColumnProfile) -> float:
    t = profile.request.threshold
    return profile.scorer.default_threshold if t is None else t


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    name: str
    role: Role
    kind: FeatureKind
    result: DriftResult


def score_drift(reference: ReferenceProfile, current: pd.DataFrame, workers: int = 1
                ) -> list[ColumnDrift]:
    """Drift of every profiled column present in the current frame (``workers`` columns at
    once in threads when more than one)."""
    present = [(name, p, current[name]) for name, p in reference.columns.items()
               if name in current.columns]
    rows = len(current)

    def one(item: tuple[str, ColumnProfile, pd.Series]) -> ColumnDrift:
        name, p, series = item
        column = CurrentColumn(series, scratch(rows, "sorted"))
        return ColumnDrift(name, p.request.role, p.kind, score_column(p, column))

    return _map(one, present, workers)


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
    n = column.size
    missing = float(column.n_missing()) / n if n else 0.0
    outliers = out_of_range = None
    new = None
    ref_num = profile.numeric
    if ref_num is not None and ref_num.n > 0 and column.is_numeric():
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


def data_quality(reference: ReferenceProfile, current: pd.DataFrame,
                 roles: Mapping[str, Role] | None = None) -> QualityFigures:
    """Data-quality figures of every profiled column, missing columns and type changes."""
    columns: list[ColumnQualityFigures] = []
    missing: list[str] = []
    changes: list[tuple[str, str, str]] = []
    for name, p in reference.columns.items():
        if name not in current.columns:
            missing.append(name)
            continue
        column = CurrentColumn(current[name])
        change = _type_change(p, column)
        if change is not None:
            changes.append(change)
        columns.append(column_quality(p, column))
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
            ) -> tuple[ColumnDrift, ColumnQualityFigures | None, tuple[str, str, str] | None]:
        name, p = item
        # The sort of every column this thread prepares goes to the same memory.
        column = CurrentColumn(current[name], scratch(rows, "sorted"))
        drift = ColumnDrift(name, p.request.role, p.kind, score_column(p, column))
        if p.request.role not in quality_roles:
            return drift, None, None
        return drift, column_quality(p, column), _type_change(p, column)

    results = _map(one, present, workers)
    return WindowScores(
        [drift for drift, _, _ in results],
        QualityFigures([q for _, q, _ in results if q is not None], missing,
                       [c for _, _, c in results if c is not None]))


#: Threads for one check that runs alone (``modelmon check``): numpy's sorts and searches
#: release the GIL, so columns score in parallel; beyond four a window rarely gains more.
ALONE_MAX_WORKERS = 4
#: Windows of fewer values (rows x columns) score in one thread: starting threads would
#: cost more than they save.
PARALLEL_MIN_VALUES = 200_000


def alone_workers(rows: int, columns: int) -> int:
    """Threads for a check of ``columns`` columns of ``rows`` rows that has the machine to
    itself: one per core up to ``ALONE_MAX_WORKERS`` (and the column count), or one for a
    small window. A caller that runs many checks at once (the operator) uses one each."""
    if rows * columns < PARALLEL_MIN_VALUES:
        return 1
    return max(1, min(os.cpu_count() or 1, ALONE_MAX_WORKERS, columns))


T = TypeVar("T")
R = TypeVar("R")


def _map(func: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[func(item) for item in items]``, in ``workers`` threads when more than one."""
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))
