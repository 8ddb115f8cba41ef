"""Window sketches: a current window as aggregates, scored without its rows.

Part of ``stats`` (third stop on the data line), beside ``stats.dataset``: a
``ColumnSketch`` holds what a fitted reference column needs of a window's column (per
numeric column the counts per reference bin, missing and infinite counts, min and max,
counts beyond the reference's range and IQR fences, a grid of quantiles; per categorical
column the category counts). Anything that can aggregate produces one: a database through
an aggregate query (``sources.sql`` with ``pushdown``), a file reader chunk by chunk
(``merge`` folds two sketches of disjoint rows into the sketch of their union), or
``sketch_column`` from the values themselves, the row-mode twin the tests compare with.

``score_sketch`` and ``sketch_quality`` give the figures ``stats.dataset`` gives from the
rows: the binned drift methods (numeric: psi, jensenshannon, kl, hellinger over the
reference's bins; categorical: every method, all of which read counts) and data quality
are exact, from the same counts through the same formulas; ks and wasserstein are read off
the quantile grid with a stated bound on their error (``DriftResult.error_bound``), exactly
when the window has at most ``GRID`` finite values (the grid then holds them all). Methods
that need every value (anderson, cvm, energy) are not scored from a sketch.

The quantile grid of ``n`` finite values is ``q[k] = x_(max(1, ceil(k n / G)))`` for
``k = 0..G`` (``G = GRID``): the order statistics SQL's ``percentile_disc(k / G)``
returns. For ``x`` in ``[q[k], q[k+1])`` the window's empirical CDF lies in
``[k/G - slack, (k+1)/G + slack]``: ``slack`` is 0 for a grid read off the values, and
grows by ``1/G`` with each ``merge`` of two grids (fold chunks as a balanced tree to keep
it at ``log2(chunks) / G``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from modelmon.stats.dataset import (
    ColumnDrift,
    ColumnProfile,
    ColumnQualityFigures,
    QualityFigures,
    ReferenceProfile,
    Role,
    WindowScores,
    is_numeric,
)
from modelmon.stats.drift import divergence
from modelmon.stats.drift.base import DriftResult, get_method
from modelmon.stats.drift.distance import wasserstein
from modelmon.stats.drift.ks import (
    KS_EXACT_MAX_N,
    ks_asymptotic_pvalue,
    ks_exact,
    ks_statistic,
)
from modelmon.stats.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    as_float,
    category_names,
    fit_categorical,
    sorted_finite,
)
from modelmon.stats.summary import (
    QUANTILES,
    AnySummary,
    NumericSummary,
    categorical_summary,
    profile_summary,
)

#: Steps of the quantile grid: ``GRID + 1`` order statistics at ranks ``k / GRID``.
GRID = 1000

#: Numeric methods scored exactly from the reference's bin counts, by their formula of two
#: proportion vectors (``stats.drift.divergence``).
BINNED: Mapping[str, Callable[[NDArray[np.float64], NDArray[np.float64]], float]] = {
    "psi": divergence.psi,
    "jensenshannon": divergence.jensenshannon,
    "kl": divergence.kl_divergence,
    "hellinger": divergence.hellinger,
}

#: Numeric methods read off the quantile grid, with a bound on their error
#: (``grid_ks``, ``grid_wasserstein``).
GRIDDED = ("ks", "wasserstein")


@dataclass(frozen=True, slots=True)
class NumericSketch:
    """A numeric column of a window as counts against one fitted reference column."""

    bin_counts: NDArray[np.int64]
    """Finite values per reference bin (``NumericProfile.bin``: a value equal to an edge
    falls in the bin above it)."""
    neg_inf: int
    pos_inf: int
    minimum: float
    """Smallest finite value (NaN when there is none)."""
    maximum: float
    below_range: int
    """Values (infinities included) below the reference's minimum."""
    above_range: int
    below_fence: int
    """Values (infinities included) below the reference's lower IQR fence."""
    above_fence: int
    total: float
    """Sum of the finite values (for the column summary only)."""
    squares: float
    """Sum of their squares (for the column summary only)."""
    quantiles: NDArray[np.float64]
    """``GRID + 1`` order statistics of the finite values (empty when there are none)."""
    slack: float = 0.0
    """How far the empirical CDF may stray from the grid's band (module docstring)."""

    @property
    def finite(self) -> int:
        return int(self.bin_counts.sum())

    def values(self) -> NDArray[np.float64] | None:
        """The finite values themselves, in ascending order, when the grid holds every one
        of them (at most ``GRID`` values, grid read off the values): its ranks then cover
        ``1..n``. None otherwise."""
        steps = self.quantiles.size - 1
        count = self.finite
        if self.slack or steps < 1 or count > steps:
            return None
        _, first = np.unique(quantile_ranks(count, steps), return_index=True)
        return np.asarray(self.quantiles[first], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ColumnSketch:
    """One column of a window, as aggregates."""

    rows: int
    missing: int
    """Missing values (NULL, NaN, NA)."""
    kind: FeatureKind
    """The kind of the window's data: numeric when its values are numbers."""
    numeric: NumericSketch | None = None
    """Set when the reference column has a numeric profile and the window's column is
    numeric (or all missing)."""
    categories: CategoricalProfile | None = None
    """Set when the reference column is scored or checked as categories."""


def quantile_ranks(count: int, grid: int = GRID) -> NDArray[np.int64]:
    """The 1-based ranks of the grid's order statistics among ``count`` sorted values:
    ``max(1, ceil(k * count / grid))`` for ``k = 0..grid``."""
    steps = np.arange(grid + 1, dtype=np.int64) * count
    return np.maximum(-((-steps) // grid), 1)


def numeric_sketch(values: NDArray[np.float64], reference: NumericProfile,
                   grid: int = GRID) -> NumericSketch:
    """The sketch of a float column (NaN for missing) against a fitted reference."""
    ordered, neg_inf, pos_inf, _ = sorted_finite(values)
    count = ordered.size

    def below(bound: float) -> int:  # -inf counts unless the bound is -inf too
        return int(np.searchsorted(ordered, bound, "left")) + (neg_inf if bound > -np.inf else 0)

    def above(bound: float) -> int:
        return (count - int(np.searchsorted(ordered, bound, "right"))
                + (pos_inf if bound < np.inf else 0))

    fitted = reference.n_present > 0
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(ordered.sum()) if count else 0.0
        squares = float(np.dot(ordered, ordered)) if count else 0.0
    return NumericSketch(
        bin_counts=reference.bin_sorted(ordered),
        neg_inf=neg_inf, pos_inf=pos_inf,
        minimum=float(ordered[0]) if count else math.nan,
        maximum=float(ordered[-1]) if count else math.nan,
        below_range=below(reference.minimum) if fitted else 0,
        above_range=above(reference.maximum) if fitted else 0,
        below_fence=below(reference.lower_fence) if fitted else 0,
        above_fence=above(reference.upper_fence) if fitted else 0,
        total=total, squares=squares,
        quantiles=(ordered[quantile_ranks(count, grid) - 1].copy() if count
                   else np.empty(0, dtype=np.float64)),
    )


def sketch_column(series: pd.Series, profile: ColumnProfile, grid: int = GRID) -> ColumnSketch:
    """The sketch of a window's column from its values: what an aggregate query returns."""
    numeric = is_numeric(series)
    missing = int(series.isna().sum())
    rows = len(series)
    num = None
    if profile.numeric is not None and (numeric or missing == rows):
        num = numeric_sketch(as_float(series), profile.numeric, grid)
    cats = fit_categorical(series) if profile.categorical is not None else None
    return ColumnSketch(rows, missing, "numeric" if numeric else "categorical", num, cats)


def merge(first: ColumnSketch, second: ColumnSketch) -> ColumnSketch:
    """The sketch of the union of two disjoint sets of rows of one column (for example two
    chunks of a file): counts add; the quantile grids merge with ``slack`` grown by
    ``1 / GRID``. The kind is numeric only when both sides are (a chunk of missing values
    only takes the other's kind)."""
    if first.rows == first.missing:
        kind = second.kind
    elif second.rows == second.missing:
        kind = first.kind
    else:
        kind = "numeric" if first.kind == second.kind == "numeric" else "categorical"
    num = None
    if first.numeric is not None and second.numeric is not None:
        num = merge_numeric(first.numeric, second.numeric)
    elif first.numeric is not None or second.numeric is not None:
        num = first.numeric or second.numeric
    cats = None
    if first.categories is not None and second.categories is not None:
        cats = merge_categories(first.categories, second.categories)
    elif first.categories is not None or second.categories is not None:
        cats = first.categories or second.categories
    return ColumnSketch(first.rows + second.rows, first.missing + second.missing, kind,
                        num, cats)


def counted_categories(values: pd.Series, counts: NDArray[np.int64] | list[int],
                       missing: int) -> CategoricalProfile:
    """``fit_categorical`` of a column given as its distinct values (none missing) and
    their counts, as a ``GROUP BY`` returns them: values with one name are one category."""
    totals: dict[str, int] = {}
    for name, count in zip(category_names(values), list(counts), strict=True):
        totals[name] = totals.get(name, 0) + int(count)
    names = sorted(totals)
    counted = np.array([totals[n] for n in names], dtype=np.int64)
    return CategoricalProfile(tuple(names), counted, int(counted.sum()), missing)


def merge_categories(first: CategoricalProfile, second: CategoricalProfile
                     ) -> CategoricalProfile:
    """Category counts of both sides added up, sorted by name as ``fit_categorical``."""
    counts: dict[str, int] = dict(zip(first.categories, first.counts.tolist(), strict=True))
    for name, count in zip(second.categories, second.counts.tolist(), strict=True):
        counts[name] = counts.get(name, 0) + count
    names = sorted(counts)
    counted = np.array([counts[n] for n in names], dtype=np.int64)
    return CategoricalProfile(tuple(names), counted, int(counted.sum()),
                              first.n_missing + second.n_missing)


def merge_numeric(first: NumericSketch, second: NumericSketch) -> NumericSketch:
    """Two numeric sketches of disjoint rows against the same reference, added up."""
    grid = max(first.quantiles.size, second.quantiles.size) - 1
    quantiles, slack = _merged_grid(first, second, grid)
    return NumericSketch(
        bin_counts=first.bin_counts + second.bin_counts,
        neg_inf=first.neg_inf + second.neg_inf, pos_inf=first.pos_inf + second.pos_inf,
        minimum=float(np.fmin(first.minimum, second.minimum)),
        maximum=float(np.fmax(first.maximum, second.maximum)),
        below_range=first.below_range + second.below_range,
        above_range=first.above_range + second.above_range,
        below_fence=first.below_fence + second.below_fence,
        above_fence=first.above_fence + second.above_fence,
        total=first.total + second.total, squares=first.squares + second.squares,
        quantiles=quantiles, slack=slack,
    )


def _merged_grid(first: NumericSketch, second: NumericSketch, grid: int
                 ) -> tuple[NDArray[np.float64], float]:
    """The merged quantile grid and its slack.

    Each side stands for its grid's midpoints, each weighing ``1 / G`` of that side: their
    CDF is within ``1/G + slack`` of the side's own everywhere (both lie in the grid's band
    of width ``1/G``), so their weighted union is within ``1/G + max(slack)`` of the
    union's CDF. The union's order statistics at ``k / G`` are read off that weighted
    sample exactly (integer weights), its ends set to the true minimum and maximum.
    """
    if first.finite == 0 or second.finite == 0:
        side = second if first.finite == 0 else first
        return side.quantiles, side.slack
    if first.quantiles.size != second.quantiles.size:
        raise ValueError("sketches with quantile grids of different sizes do not merge")
    values = np.concatenate([midpoints(first.quantiles), midpoints(second.quantiles)])
    weights = np.repeat(np.array([first.finite, second.finite], dtype=np.int64), grid)
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    # Every side has G midpoints, so the total weight is G * (n1 + n2).
    targets = np.arange(grid + 1, dtype=np.int64) * (first.finite + second.finite)
    merged = values[np.minimum(np.searchsorted(cumulative, targets, "left"), values.size - 1)]
    merged[0] = min(first.minimum, second.minimum)
    merged[-1] = max(first.maximum, second.maximum)
    return merged, 1.0 / grid + max(first.slack, second.slack)


def midpoints(quantiles: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``G`` midpoints of a grid's steps: a sample of ``G`` values whose CDF lies in
    the grid's band."""
    with np.errstate(over="ignore"):
        mid = quantiles[:-1] / 2.0 + quantiles[1:] / 2.0
    return np.asarray(mid, dtype=np.float64)


def score_sketch(profile: ColumnProfile, sketch: ColumnSketch) -> DriftResult:
    """Drift of one sketched column against its reference profile: ``score_column``'s
    result where the method reads counts; an unscored result naming the method where it
    reads every value."""
    if (profile.kind == "numeric" and sketch.kind != "numeric"
            and sketch.missing < sketch.rows):
        return DriftResult(profile.method, None, None,
                           "not scored: the column is numeric in the reference but not in "
                           "the current window")
    if profile.kind == "categorical":
        ref_cats = profile.categorical
        assert ref_cats is not None
        current = sketch.categories or CategoricalProfile((), np.zeros(0, dtype=np.int64), 0,
                                                          sketch.missing)
        method = profile.scorer
        if (profile.method == "ztest" and profile.by_auto
                and set(current.categories) - set(ref_cats.categories)):
            method = get_method("chisquare", "categorical")
        return method.score(ref_cats, current, prepared=True)  # type: ignore[arg-type]
    ref = profile.numeric
    assert ref is not None
    binned = BINNED.get(profile.method)
    if binned is None and profile.method not in GRIDDED:
        return DriftResult(profile.method, None, None,
                           f"not scored: {profile.method} needs every value of the window, "
                           "which a sketch does not hold")
    counts = (sketch.numeric.bin_counts if sketch.numeric is not None
              else np.zeros(ref.bin_counts.size, dtype=np.int64))
    if ref.n_present == 0 or counts.sum() == 0:
        side = "reference" if ref.n_present == 0 else "current window"
        return DriftResult(profile.method, None, None,
                           f"not scored: the {side} has no usable values")
    if binned is None:
        assert sketch.numeric is not None
        every = sketch.numeric.values()
        if every is not None and ref.quantiles is None:
            # A small window: the grid is the window, scored exactly.
            return profile.scorer.score(ref, every, prepared=True)  # type: ignore[arg-type]
        return (grid_ks(ref, sketch.numeric) if profile.method == "ks"
                else grid_wasserstein(ref, sketch.numeric))
    statistic = binned(divergence.proportions(ref.bin_counts), divergence.proportions(counts))
    if math.isnan(statistic):
        return DriftResult(profile.method, None, None,
                           "not scored: the statistic is undefined for these samples")
    return DriftResult(profile.method, statistic, None)


def _steps(sketch: NumericSketch) -> tuple[int, int]:
    """(G, s): the grid's steps, and how many steps its slack spans (rounded up)."""
    steps = sketch.quantiles.size - 1
    return steps, math.ceil(sketch.slack * steps - 1e-9)


def ks_error_bound(sketch: NumericSketch) -> float:
    """How far the KS distance read off the grid may be from the window's own.

    The grid's midpoints, as a sample of ``G`` values, have a CDF that takes ``k/G`` or
    ``(k+1)/G`` on ``[q[k], q[k+1])``, where the window's lies in ``[k/G - slack,
    (k+1)/G + slack]``; the two differ by at most ``1/G + slack`` anywhere, and so do the
    largest gaps of each to the reference's (exact) CDF.
    """
    steps, _ = _steps(sketch)
    return 1.0 / steps + sketch.slack


def wasserstein_error_bound(sketch: NumericSketch) -> float:
    """How far the Wasserstein-1 distance read off the grid may be from the window's own
    (in the data's units).

    Wasserstein-1 is the area between the quantile functions, and the grid's midpoints
    stand for the window's quantile function: on ``(k/G, (k+1)/G]`` it is the midpoint
    ``m[k]``, where the window's lies in ``[q[k-s], q[k+1+s]]`` (``s`` the steps the slack
    spans; 0 for a grid read off the values). The two areas differ by at most the area
    between those functions: ``sum_k max(m[k] - q[k-s], q[k+1+s] - m[k]) / G``, at most
    half the window's range over ``G`` for an exact grid.
    """
    _, spread = _steps(sketch)
    return grid_wasserstein_bound(sketch.quantiles, spread)


def grid_wasserstein_bound(grid: NDArray[np.float64], spread: int = 0) -> float:
    """``wasserstein_error_bound`` of a quantile grid whose slack spans ``spread`` steps
    (0: read off the values)."""
    steps = grid.size - 1
    mid = midpoints(grid)
    index = np.arange(steps)
    low = grid[np.maximum(index - spread, 0)]
    high = grid[np.minimum(index + 1 + spread, steps)]
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.maximum(mid - low, high - mid).sum() / steps)


def _sides(reference: NumericProfile, sketch: NumericSketch
           ) -> tuple[NDArray[np.float64], str, bool]:
    """The window's sample for a gridded method (its values when the grid holds them all,
    else the grid's midpoints), what was read off a grid (for the message), and whether the
    window's side is exact."""
    every = sketch.values()
    steps = sketch.quantiles.size - 1
    if reference.quantiles is None:
        return midpoints(sketch.quantiles), f"a {steps}-step quantile grid of the window", False
    ref_steps = reference.quantiles.size - 1
    if every is not None:
        return every, f"a {ref_steps}-step quantile grid of the reference", True
    return (midpoints(sketch.quantiles),
            f"{steps}-step quantile grids of the window and of the reference", False)


def grid_ks(reference: NumericProfile, sketch: NumericSketch) -> DriftResult:
    """The KS test read off the window's quantile grid: the distance between the
    reference's CDF and that of the grid's midpoints (``ks_error_bound`` from the window's
    own), its p-value that distance's for the true sizes (scipy's exact distribution up to
    ``KS_EXACT_MAX_N`` values, Smirnov's asymptotic one above; without the tied-data
    correction, which needs every value). A reference fitted from aggregates stands for
    its values by its own grid's midpoints (``NumericProfile.quantiles``): the bound then
    adds that grid's ``1 / G``."""
    current, read, exact = _sides(reference, sketch)
    distance = ks_statistic(reference.sorted_values, current, reference.grid)
    n_ref, n_cur = reference.n_present, sketch.finite
    exact_p = (ks_exact(distance, n_ref, n_cur) if max(n_ref, n_cur) <= KS_EXACT_MAX_N
               else None)
    p_value = exact_p[1] if exact_p is not None else ks_asymptotic_pvalue(distance, n_ref,
                                                                          n_cur)
    bound = 0.0 if exact else ks_error_bound(sketch)
    if reference.quantiles is not None:
        bound += 1.0 / (reference.quantiles.size - 1)
    return DriftResult("ks", distance, p_value,
                       f"read off {read}: the statistic is within {bound:.3g} of the rows' "
                       "own", effect_size=distance, error_bound=bound)


def grid_wasserstein(reference: NumericProfile, sketch: NumericSketch) -> DriftResult:
    """Normed Wasserstein-1 read off the window's quantile grid: the distance from the
    reference to the grid's midpoints over the reference's standard deviation, with
    ``wasserstein_error_bound`` on the same scale (plus the reference grid's own bound when
    the reference was fitted from aggregates: the triangle inequality)."""
    scaled = math.isfinite(reference.std) and reference.std > 0
    scale = reference.std if scaled else 1.0
    current, read, exact = _sides(reference, sketch)
    distance = wasserstein(reference.sorted_values, current) / scale
    bound = 0.0 if exact else wasserstein_error_bound(sketch)
    if reference.quantiles is not None:
        bound += grid_wasserstein_bound(reference.quantiles)
    bound /= scale
    message = f"read off {read}: the statistic is within {bound:.3g} of the rows' own"
    if not scaled:
        message += ("; the reference has no spread (standard deviation 0 or not finite): "
                    "the distance is not normalised")
    if not math.isfinite(distance):
        return DriftResult("wasserstein", None, None,
                           "not scored: the statistic is undefined for these samples")
    return DriftResult("wasserstein", distance, None, message,
                       error_bound=bound if math.isfinite(bound) else None)


def sketch_quality(profile: ColumnProfile, sketch: ColumnSketch) -> ColumnQualityFigures:
    """``column_quality`` of a sketched column: the same figures from its counts."""
    missing = float(sketch.missing) / sketch.rows if sketch.rows else 0.0
    outliers = out_of_range = None
    new = None
    ref_num = profile.numeric
    num = sketch.numeric
    if (ref_num is not None and ref_num.n_present > 0 and sketch.kind == "numeric"
            and num is not None):
        present = sketch.rows - sketch.missing
        if present:
            outliers = float(num.below_fence + num.above_fence) / present
            out_of_range = float(num.below_range + num.above_range) / present
        else:
            outliers = out_of_range = 0.0
    if profile.categorical is not None:
        seen = set(profile.categorical.categories)
        current = sketch.categories.categories if sketch.categories is not None else ()
        new = sum(1 for c in current if c not in seen)
    return ColumnQualityFigures(profile.name, missing, outliers, out_of_range, new)


def sketch_type_change(profile: ColumnProfile, sketch: ColumnSketch
                       ) -> tuple[str, str, str] | None:
    """(column, reference kind, window kind) when the kinds differ and the window's column
    is not all missing."""
    if sketch.kind != profile.dtype_kind and sketch.missing < sketch.rows:
        return (profile.name, profile.dtype_kind, sketch.kind)
    return None


def sketch_summaries(profile: ColumnProfile, sketch: ColumnSketch
                     ) -> tuple[AnySummary | None, AnySummary | None]:
    """(reference, current) column summaries; the window's numeric quantiles are read off
    the grid (shown beside the figure, never judged)."""
    if profile.kind == "numeric" and profile.numeric is not None:
        ref = profile_summary(profile.numeric)
        num = sketch.numeric
        if num is None:
            return ref, None
        return ref, numeric_summary_of(num)
    if profile.categorical is not None and sketch.categories is not None:
        return (categorical_summary(profile.categorical),
                categorical_summary(sketch.categories, profile.categorical))
    return None, None


def numeric_summary_of(sketch: NumericSketch) -> NumericSummary:
    """A numeric summary from a sketch: mean and spread from its sums, quantiles the grid's
    nearest order statistics."""
    count = sketch.finite
    if count == 0:
        nan = math.nan
        return NumericSummary(0, nan, nan, nan, nan, tuple(nan for _ in QUANTILES))
    mean = sketch.total / count
    std = math.sqrt(max(sketch.squares / count - mean * mean, 0.0))
    steps = sketch.quantiles.size - 1
    picks = [sketch.quantiles[round(q * steps)] if steps > 0 else math.nan for q in QUANTILES]
    return NumericSummary(count, mean, std, sketch.minimum, sketch.maximum,
                          tuple(float(q) for q in picks))


def score_sketches(reference: ReferenceProfile, sketches: Mapping[str, ColumnSketch],
                   quality_roles: tuple[Role, ...] = ("feature",)) -> WindowScores:
    """``score_window`` of a window given as one sketch per column (a column without a
    sketch is missing from the window)."""
    drift: list[ColumnDrift] = []
    quality: list[ColumnQualityFigures] = []
    changes: list[tuple[str, str, str]] = []
    missing: list[str] = []
    for name, profile in reference.columns.items():
        sketch = sketches.get(name)
        role = profile.request.role
        if sketch is None:
            if role in quality_roles:
                missing.append(name)
            continue
        drift.append(ColumnDrift(name, role, profile.kind, score_sketch(profile, sketch),
                                 *sketch_summaries(profile, sketch)))
        if role in quality_roles:
            quality.append(sketch_quality(profile, sketch))
            change = sketch_type_change(profile, sketch)
            if change is not None:
                changes.append(change)
    return WindowScores(drift, QualityFigures(quality, missing, changes))


__all__ = [
    "BINNED",
    "GRID",
    "GRIDDED",
    "ColumnSketch",
    "NumericSketch",
    "counted_categories",
    "grid_ks",
    "grid_wasserstein",
    "grid_wasserstein_bound",
    "ks_error_bound",
    "merge",
    "merge_categories",
    "merge_numeric",
    "midpoints",
    "numeric_sketch",
    "quantile_ranks",
    "score_sketch",
    "score_sketches",
    "sketch_column",
    "sketch_quality",
    "sketch_summaries",
    "sketch_type_change",
    "wasserstein_error_bound",
]
