"""Whole-dataset statistics: fit a reference once, then score current windows against it.

Part of ``stats`` (third stop on the data line). ``fit_reference`` turns the reference frame
into a ``ReferenceProfile`` (one profile per monitored column, plus its kind); ``score_drift``
and ``data_quality`` read only the profile and the current frame, one column at a time, so a
check never re-sorts or re-bins the reference and never copies the whole window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.drift import auto_method
from modelmon.stats.drift.base import DriftResult, UnknownMethodError, get_method, method_names
from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    as_float,
    finite,
    fit_categorical,
    fit_numeric,
)

#: Numeric columns with at most this many distinct reference values are scored as
#: categorical under ``auto`` (the same cut-off as the auto rule's "more than 5 values").
LOW_CARDINALITY = 5

Role = Literal["feature", "prediction", "target"]


class ColumnSpecError(ValueError):
    """A column's configured method or kind cannot work; the message names the column."""


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
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def fit_column(series: pd.Series, request: ColumnRequest, reference_rows: int) -> ColumnProfile:
    """Fit one reference column and pick its kind and method."""
    dtype_kind: FeatureKind = "numeric" if is_numeric(series) else "categorical"
    numeric = fit_numeric(series) if dtype_kind == "numeric" else None
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
        get_method(method, kind)
    except UnknownMethodError as exc:
        raise ColumnSpecError(f"column {request.name!r} is {kind}: {exc}") from None
    return ColumnProfile(request, dtype_kind, kind, method, numeric, categorical)


def fit_reference(frame: pd.DataFrame, requests: Iterable[ColumnRequest]) -> ReferenceProfile:
    """Fit every requested column of the reference frame."""
    rows = len(frame)
    return ReferenceProfile(
        rows=rows,
        columns={r.name: fit_column(frame[r.name], r, rows) for r in requests},
    )


def current_values(series: pd.Series, profile: ColumnProfile
                   ) -> NDArray[np.float64] | CategoricalProfile:
    """The current column in the shape the column's method scores."""
    if profile.kind == "numeric":
        return finite(as_float(series))
    return fit_categorical(series)


def score_column(profile: ColumnProfile, series: pd.Series) -> DriftResult:
    """Drift of one current column against its reference profile."""
    method = get_method(profile.method, profile.kind)
    if profile.kind == "numeric" and not is_numeric(series) and series.notna().any():
        return DriftResult(profile.method, None, None, _threshold(profile), False,
                           "not scored: the column is numeric in the reference but not in "
                           "the current window")
    ref = profile.numeric if profile.kind == "numeric" else profile.categorical
    current = current_values(series, profile)
    if (profile.method == "ztest" and profile.request.method == "auto"
            and isinstance(current, CategoricalProfile) and ref is not None
            and set(current.categories) - set(ref.categories)):  # type: ignore[union-attr]
        # auto picked the two-category test, but the window brought a third category.
        method = get_method("chisquare", "categorical")
    return method.score(ref, current, profile.request.threshold)  # type: ignore[arg-type]


def _threshold(profile: ColumnProfile) -> float:
    t = profile.request.threshold
    return get_method(profile.method, profile.kind).default_threshold if t is None else t


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    name: str
    role: Role
    kind: FeatureKind
    result: DriftResult


def score_drift(reference: ReferenceProfile, current: pd.DataFrame) -> list[ColumnDrift]:
    """Drift of every profiled column present in the current frame."""
    return [
        ColumnDrift(name, p.request.role, p.kind, score_column(p, current[name]))
        for name, p in reference.columns.items()
        if name in current.columns
    ]


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


def column_quality(profile: ColumnProfile, series: pd.Series) -> ColumnQualityFigures:
    """Missing, outlier, out-of-range and new-category figures of one current column."""
    n = len(series)
    missing = float(series.isna().sum()) / n if n else 0.0
    outliers = out_of_range = None
    new = None
    ref_num = profile.numeric
    if ref_num is not None and ref_num.n > 0 and is_numeric(series):
        values = as_float(series)
        ok = values[~np.isnan(values)]
        if ok.size:
            outliers = float(np.count_nonzero(
                (ok < ref_num.lower_fence) | (ok > ref_num.upper_fence))) / ok.size
            out_of_range = float(np.count_nonzero(
                (ok < ref_num.minimum) | (ok > ref_num.maximum))) / ok.size
        else:
            outliers = out_of_range = 0.0
    if profile.categorical is not None:
        seen = set(profile.categorical.categories)
        cur = fit_categorical(series)
        new = sum(1 for c in cur.categories if c not in seen)
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
        series = current[name]
        cur_kind = "numeric" if is_numeric(series) else "categorical"
        # An all-null current column has no type of its own; do not call it a change.
        if cur_kind != p.dtype_kind and series.notna().any():
            changes.append((name, p.dtype_kind, cur_kind))
        columns.append(column_quality(p, series))
    return QualityFigures(columns, missing, changes)
