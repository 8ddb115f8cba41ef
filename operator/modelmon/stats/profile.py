"""Reference profiles: what a check keeps of the reference data.

Sits at the start of ``stats``: a reference column is fitted once into a profile (sorted
finite values, quantile bin edges, IQR fences, category counts) that every drift method,
data-quality check and later check reuses, so that the steady-state cost of a check is the
cost of reading and scoring the current window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FeatureKind = Literal["numeric", "categorical"]

#: Number of equal-frequency reference bins used by binned numeric methods (PSI, JS, KL,
#: Hellinger). Ten deciles is the usual choice for PSI in credit-risk practice.
NUMERIC_BINS = 10


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """A numeric reference column, fitted once."""

    sorted_values: NDArray[np.float64]
    """Finite reference values in ascending order."""
    n: int
    n_missing: int
    n_unique: int
    mean: float
    std: float
    """Population standard deviation (ddof=0) of the finite values."""
    minimum: float
    maximum: float
    q1: float
    q3: float
    bin_edges: NDArray[np.float64]
    """Interior edges of the equal-frequency bins; the outer bins are open-ended."""
    bin_counts: NDArray[np.int64]
    """Reference counts per bin (``len(bin_edges) + 1`` bins)."""

    kind: Literal["numeric"] = "numeric"

    @property
    def lower_fence(self) -> float:
        return self.q1 - 1.5 * (self.q3 - self.q1)

    @property
    def upper_fence(self) -> float:
        return self.q3 + 1.5 * (self.q3 - self.q1)

    def bin(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Counts of ``values`` (finite) in the reference's bins."""
        idx = np.searchsorted(self.bin_edges, values, side="right")
        return np.bincount(idx, minlength=len(self.bin_edges) + 1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """A categorical column's category counts (reference or current)."""

    categories: tuple[str, ...]
    counts: NDArray[np.int64]
    n: int
    n_missing: int

    kind: Literal["categorical"] = "categorical"

    @property
    def n_unique(self) -> int:
        return len(self.categories)


ColumnProfile = NumericProfile | CategoricalProfile


def finite(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The finite values of a float array (NaN and +-inf dropped)."""
    mask = np.isfinite(values)
    return values if mask.all() else values[mask]


def as_float(series: pd.Series | NDArray[np.generic]) -> NDArray[np.float64]:
    """A column as float64, with missing values as NaN."""
    if isinstance(series, pd.Series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(series, dtype=np.float64)


def fit_numeric(values: pd.Series | NDArray[np.generic]) -> NumericProfile:
    """Fit a numeric column: one sort, then everything is read off the sorted values."""
    raw = as_float(values)
    clean = np.sort(finite(raw))
    n = int(clean.size)
    n_missing = int(raw.size - n)
    if n == 0:
        empty = np.empty(0, dtype=np.float64)
        return NumericProfile(
            sorted_values=empty, n=0, n_missing=n_missing, n_unique=0,
            mean=float("nan"), std=float("nan"), minimum=float("nan"), maximum=float("nan"),
            q1=float("nan"), q3=float("nan"), bin_edges=empty,
            bin_counts=np.zeros(1, dtype=np.int64),
        )
    n_unique = int(np.count_nonzero(np.diff(clean)) + 1)
    mean, std = _moments(clean)
    q1, q3 = (float(q) for q in np.quantile(clean, [0.25, 0.75]))
    edges = np.unique(np.quantile(clean, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
    profile = NumericProfile(
        sorted_values=clean, n=n, n_missing=n_missing, n_unique=n_unique,
        mean=mean, std=std,
        minimum=float(clean[0]), maximum=float(clean[-1]), q1=q1, q3=q3,
        bin_edges=edges.astype(np.float64), bin_counts=np.zeros(1, dtype=np.int64),
    )
    counts = profile.bin(clean)
    return NumericProfile(
        sorted_values=clean, n=n, n_missing=n_missing, n_unique=n_unique,
        mean=profile.mean, std=profile.std, minimum=profile.minimum, maximum=profile.maximum,
        q1=q1, q3=q3, bin_edges=profile.bin_edges, bin_counts=counts,
    )


def _moments(clean: NDArray[np.float64]) -> tuple[float, float]:
    """Mean and population std of sorted finite values, without overflow near 1e308."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(clean.mean()), float(clean.std())
    if math.isfinite(mean) and math.isfinite(std):
        return mean, std
    scale = max(abs(float(clean[0])), abs(float(clean[-1])))
    scaled = clean / scale
    with np.errstate(over="ignore"):
        return float(scaled.mean()) * scale, float(scaled.std()) * scale


def fit_categorical(values: pd.Series | NDArray[np.generic]) -> CategoricalProfile:
    """Count the categories of a column; values are compared as strings, missing dropped."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    missing = series.isna()
    present = series[~missing]
    if present.dtype.kind == "f" and bool((present == np.round(present)).all()):
        # A float column of whole numbers (ints read with NaNs): "1", not "1.0".
        present = present.astype(np.int64)
    counts = present.astype(str).value_counts(sort=False)
    order = np.argsort(counts.index.to_numpy(dtype=str), kind="stable")
    cats = tuple(str(c) for c in counts.index.to_numpy(dtype=str)[order])
    return CategoricalProfile(
        categories=cats,
        counts=np.asarray(counts.to_numpy(dtype=np.int64)[order], dtype=np.int64),
        n=int(present.size),
        n_missing=int(missing.sum()),
    )


def align(reference: CategoricalProfile, current: CategoricalProfile
          ) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[str, ...]]:
    """Counts of both sides over the union of their categories (reference order first)."""
    index = {c: i for i, c in enumerate(reference.categories)}
    extra = [c for c in current.categories if c not in index]
    cats = reference.categories + tuple(extra)
    for c in extra:
        index[c] = len(index)
    ref = np.zeros(len(cats), dtype=np.int64)
    ref[: len(reference.categories)] = reference.counts
    cur = np.zeros(len(cats), dtype=np.int64)
    cur[[index[c] for c in current.categories]] = current.counts
    return ref, cur, cats
