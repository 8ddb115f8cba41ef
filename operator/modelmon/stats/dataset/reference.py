"""Reference fitting: the reference frame, fitted once into a ``ReferenceProfile``.

Part of ``stats`` (third stop on the data line), first half of ``stats.dataset``:
``fit_reference`` turns the reference frame into one profile per monitored column (sorted
values, category counts, whatever its drift method keeps) together with the kind it is
scored as and the method that scores it, so that scoring a window (``dataset.window``)
never re-sorts or re-bins the reference.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.dataset.threads import map_in_threads
from modelmon.stats.drift import auto_method
from modelmon.stats.drift.base import (
    AnyMethod,
    NumericMethod,
    UnknownMethodError,
    get_method,
    method_names,
)
from modelmon.stats.drift.learned import ChunkDistances
from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    fit_categorical,
    fit_numeric,
)

#: Numeric columns with at most this many distinct finite reference values are scored as
#: categorical under ``auto`` (the same cut-off as the auto rule's "more than 5 values");
#: each number is then a category (``fit_categorical``), the infinities included.
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
    """The column's own method, which must apply to it (``ColumnSpecError`` otherwise);
    ``auto``: none, the method of the kind the column is scored as decides."""
    categorical: bool = False
    """Declared categorical in the spec."""
    numeric_method: str = "auto"
    """Without a method of its own: the method when the column is scored as numeric. A
    numeric column is scored as numeric unless this is ``auto`` and the ``auto`` rule
    counts its values as categories (at most ``LOW_CARDINALITY`` distinct values)."""
    categorical_method: str = "auto"
    """Without a method of its own: the method when the column is scored as categorical."""

    def kind_method(self, kind: FeatureKind) -> str:
        """The method (or ``auto``) for the column scored as ``kind``."""
        if self.method != "auto":
            return self.method
        return self.numeric_method if kind == "numeric" else self.categorical_method


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
    by_auto: bool = False
    """``method`` is the ``auto`` rule's pick."""

    @property
    def name(self) -> str:
        return self.request.name


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Everything a check keeps of the reference data."""

    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    chunk_distances: dict[int, dict[str, ChunkDistances]] = field(
        default_factory=dict, compare=False, repr=False)
    """Learned-threshold figures already computed, by chunk size, then column
    (``dataset.thresholds``): they depend only on the reference, so they live with it."""


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
    kind = scored_kind(request, dtype_kind, numeric.n_unique if numeric is not None else 0)
    categorical = fit_categorical(series) if kind == "categorical" else None
    return fitted_column(request, dtype_kind, kind, numeric, categorical, reference_rows)


def scored_kind(request: ColumnRequest, dtype_kind: FeatureKind, n_unique: int
                ) -> FeatureKind:
    """The kind a column is scored as, from the kind of its data and (numbers) its count
    of distinct finite values."""
    own = request.method
    if request.categorical or dtype_kind == "categorical":
        return "categorical"
    if own == "auto" and request.numeric_method == "auto":
        # Few distinct values: the values are scored as categories.
        return "numeric" if n_unique > LOW_CARDINALITY else "categorical"
    if own == "auto" or own in method_names("numeric"):
        return "numeric"
    return "categorical"  # a categorical-only method on numbers: values are categories


def fitted_column(request: ColumnRequest, dtype_kind: FeatureKind, kind: FeatureKind,
                  numeric: NumericProfile | None, categorical: CategoricalProfile | None,
                  reference_rows: int) -> ColumnProfile:
    """A column's profile from its fitted parts (``categorical`` set when ``kind`` is
    categorical): its method picked and fitted (``ColumnSpecError`` when the column's own
    method does not apply)."""
    method = request.kind_method(kind)
    by_auto = method == "auto"
    if by_auto:
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
    return ColumnProfile(request, dtype_kind, kind, method, numeric, categorical, scorer,
                         by_auto)


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
        fitted = map_in_threads(lambda item: fit_column(item[0], item[1], rows), items, workers)
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

    done = map_in_threads(fit, requests, workers)
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
