"""Reference profiles: what a check keeps of the reference data.

Sits at the start of ``stats``: a reference column is fitted once into a profile (sorted
finite values, quantile bin edges, IQR fences, category counts) that every drift method,
data-quality check and later check reuses, so that the steady-state cost of a check is the
cost of reading and scoring the current window.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FeatureKind = Literal["numeric", "categorical"]

#: Number of equal-frequency reference bins used by binned numeric methods (PSI, JS, KL,
#: Hellinger). Ten deciles is the usual choice for PSI in credit-risk practice.
NUMERIC_BINS = 10


@dataclass(frozen=True, slots=True)
class RankGrid:
    """Some distinct values of a sorted sample with their exact ranks in it: ``below[k]``
    of its values are smaller than ``values[k]`` and ``upto[k]`` are at most equal to it.
    The first and last values are the sample's smallest and largest."""

    values: NDArray[np.float64]
    below: NDArray[np.intp]
    upto: NDArray[np.intp]
    below_share: NDArray[np.float64]
    """``below / n`` (``n`` the sample's size), as the KS statistic divides it."""
    upto_share: NDArray[np.float64]
    """``upto / n``."""


#: A reference of ``n`` values keeps a grid of about ``RANK_GRID_SCALE * sqrt(n)`` of them
#: (about 1,600 at 100k values, 5,000 at 1M): enough that the KS statistic needs exact
#: ranks at few other points, few enough to search cheaply in every current window
#: (measured: 3.2 to 6.4 cost the same within noise, 9 more).
RANK_GRID_SCALE = 5.0


def rank_grid(sorted_values: NDArray[np.float64], size: int | None = None) -> RankGrid:
    """A ``RankGrid`` of a non-empty sorted array: about ``size`` values at equal steps of
    rank (by default ``RANK_GRID_SCALE * sqrt(n)``), repeats dropped."""
    count = sorted_values.size
    if size is None:
        size = math.ceil(RANK_GRID_SCALE * math.sqrt(count))
    positions = np.linspace(0, count - 1, min(max(size, 2), count)).astype(np.intp)
    values = sorted_values[positions]
    values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    below = np.searchsorted(sorted_values, values, "left")
    upto = np.searchsorted(sorted_values, values, "right")
    return RankGrid(values, below, upto, below / count, upto / count)


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """A numeric reference column, fitted once."""

    sorted_values: NDArray[np.float64]
    """Finite reference values in ascending order."""
    n_present: int
    n_missing: int
    n_unique: int
    mean: float
    std: float
    """Population standard deviation (ddof=0) of the finite values."""
    minimum: float
    maximum: float
    lower_quartile: float
    upper_quartile: float
    bin_edges: NDArray[np.float64]
    """Interior edges of the equal-frequency bins; the outer bins are open-ended."""
    bin_counts: NDArray[np.int64]
    """Reference counts per bin (``len(bin_edges) + 1`` bins)."""
    grid: RankGrid | None = None
    """Some of ``sorted_values`` with their ranks (``rank_grid``), kept when the column is
    scored by KS (``KolmogorovSmirnov.fit``)."""
    quantiles: NDArray[np.float64] | None = None
    """Set when the profile was fitted from aggregates (``sql.pushdown`` on the reference)
    and the column has more finite values than the grid has steps: its quantile grid
    (order statistics of ranks ``max(1, ceil(k n / G))``, ``k = 0..G``), and
    ``sorted_values`` holds the grid's ``G`` midpoints, a sample standing for the values
    (ks and wasserstein are then read off both grids, with a bound on their error). None
    when ``sorted_values`` holds every finite value."""

    kind: Literal["numeric"] = "numeric"

    @property
    def lower_fence(self) -> float:
        return self.lower_quartile - 1.5 * (self.upper_quartile - self.lower_quartile)

    @property
    def upper_fence(self) -> float:
        return self.upper_quartile + 1.5 * (self.upper_quartile - self.lower_quartile)

    def bin(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Counts of ``values`` (finite) in the reference's bins: a value equal to an edge
        falls in the bin above it. Sorted values are counted with one binary search per
        edge instead of one per value."""
        if is_ascending(values):
            return self.bin_sorted(values)
        idx = np.searchsorted(self.bin_edges, values, side="right")
        return np.bincount(idx, minlength=len(self.bin_edges) + 1).astype(np.int64)

    def bin_sorted(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """``bin`` of values known to be finite and ascending."""
        ends = np.searchsorted(values, self.bin_edges, side="left")
        return np.diff(ends, prepend=0, append=values.size).astype(np.int64)


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """A categorical column's category counts (reference or current)."""

    categories: tuple[str, ...]
    counts: NDArray[np.int64]
    n_present: int
    n_missing: int

    kind: Literal["categorical"] = "categorical"

    @property
    def n_unique(self) -> int:
        return len(self.categories)


#: Elements per block when a pass over a column needs a temporary array: 64 KiB of
#: booleans, little enough for the allocator to hand the same memory back block after
#: block instead of mapping (and page-faulting) a fresh column-sized array each time.
BLOCK = 1 << 16
#: The same for float64 temporaries (64 KiB).
FLOAT_BLOCK = 1 << 13

_scratch = threading.local()


def scratch(size: int, slot: str = "work") -> NDArray[np.float64]:
    """A float64 array of ``size`` elements, reused by every call in this thread that asks
    for the same ``slot``.

    The buffer grows to the largest column seen and is kept, so a check allocates its
    temporaries once per thread rather than once per column. The caller must be done with
    it before anything else in the thread asks for the same slot.
    """
    buffers: dict[str, NDArray[np.float64]] | None = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buffer = buffers.get(slot)
    if buffer is None or buffer.size < size:
        buffer = buffers[slot] = np.empty(max(size, 1), dtype=np.float64)
    return buffer[:size]


def finite(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The finite values of a float array (NaN and +-inf dropped); the array itself, not a
    copy, when all of them are finite."""
    for start in range(0, values.size, BLOCK):
        if not np.isfinite(values[start:start + BLOCK]).all():
            return values[np.isfinite(values)]
    return values


class SortedFinite(NamedTuple):
    """A float column sorted once: its finite values in ascending order and what was cut
    off at either end."""

    values: NDArray[np.float64]
    neg_inf: int
    pos_inf: int
    nan: int


def sorted_finite(values: NDArray[np.float64], out: NDArray[np.float64] | None = None
                  ) -> SortedFinite:
    """The finite values of a float array in ascending order, from one sort and at most
    three binary searches.

    numpy sorts -inf first and +inf then NaN last, so the finite values are one slice of
    the sorted array, found without another pass over the column. ``out`` (at least as
    large as ``values``, or ``values`` itself to sort in place) receives the sorted values,
    else a new array does; the result is a view of it.
    """
    if out is None:
        ordered = np.sort(values)
    else:
        ordered = out[:values.size]
        if ordered is not values:
            np.copyto(ordered, values)
        ordered.sort()
    size = ordered.size
    if size == 0:
        return SortedFinite(ordered, 0, 0, 0)
    low = 0 if ordered[0] > -np.inf else int(np.searchsorted(ordered, -np.inf, "right"))
    if ordered[-1] < np.inf:
        return SortedFinite(ordered[low:], low, 0, 0)
    high = int(np.searchsorted(ordered, np.inf, "left"))
    first_nan = int(np.searchsorted(ordered, np.nan, "left"))
    return SortedFinite(ordered[low:high], low, first_nan - high, size - first_nan)


def as_float(series: pd.Series | NDArray[np.generic]) -> NDArray[np.float64]:
    """A column as float64, with missing values as NaN (a view, not a copy, when the column
    already is float64)."""
    if isinstance(series, pd.Series):
        if series.dtype == np.float64:
            return np.asarray(series.to_numpy(), dtype=np.float64)
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(series, dtype=np.float64)


def is_ascending(values: NDArray[np.float64]) -> bool:
    """Whether finite values are in ascending order (one pass; stops at the first block
    that is not)."""
    last = values.size - 1
    for start in range(0, last, BLOCK):
        stop = min(start + BLOCK, last)
        if not np.all(values[start + 1:stop + 1] >= values[start:stop]):
            return False
    return True


def ascending(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Finite values in ascending order: sorted once, or as given when they already are."""
    return values if is_ascending(values) else np.sort(values)


def count_distinct(sorted_values: NDArray[np.float64]) -> int:
    """Distinct values of a non-empty sorted array."""
    last = sorted_values.size - 1
    changes = 0
    for start in range(0, last, BLOCK):
        stop = min(start + BLOCK, last)
        changes += int(np.count_nonzero(sorted_values[start + 1:stop + 1]
                                        != sorted_values[start:stop]))
    return changes + 1


def quantile_positions(count: int, probabilities: Sequence[float] | NDArray[np.float64]
                       ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """The 0-based positions (below, above) among ``count`` sorted values between which
    ``np.quantile``'s linear method interpolates each probability, and the weight of the
    upper one (-1 stands for the last value)."""
    virtual = (count - 1) * np.asarray(probabilities, dtype=np.float64)
    below = np.floor(virtual)
    above = below + 1
    top = virtual >= count - 1
    below[top] = -1
    above[top] = -1
    below_i, above_i = below.astype(np.intp), above.astype(np.intp)
    return below_i, above_i, virtual - below_i


def interpolate(lower: NDArray[np.float64], upper: NDArray[np.float64],
                gamma: NDArray[np.float64]) -> NDArray[np.float64]:
    """numpy's ``_lerp``: from ``lower`` towards ``upper`` by ``gamma``, from the nearer
    end."""
    diff = upper - lower
    out: NDArray[np.float64] = lower + diff * gamma
    np.subtract(upper, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def sorted_quantiles(sorted_values: NDArray[np.float64],
                     probabilities: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.quantile(sorted_values, q)`` (its default linear method, bit for bit) for a
    non-empty sorted array, read off the order statistics without partitioning a copy."""
    below, above, gamma = quantile_positions(sorted_values.size, probabilities)
    return interpolate(sorted_values[below], sorted_values[above], gamma)


#: The probabilities of a numeric profile's quartiles and of its bin edges.
QUARTILES = (0.25, 0.75)
EDGE_PROBABILITIES = np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]


def fit_ranks(count: int) -> list[int]:
    """The 1-based ranks of the order statistics ``fit_numeric`` reads the quartiles and
    bin edges off, among ``count`` finite values (for fitting from aggregates)."""
    ranks: set[int] = set()
    for probabilities in (QUARTILES, EDGE_PROBABILITIES):
        below, above, _ = quantile_positions(count, probabilities)
        ranks.update(int(i) % count + 1 for i in (*below, *above))
    return sorted(ranks)


def ranked_quantiles(order: dict[int, float], count: int,
                     probabilities: Sequence[float] | NDArray[np.float64]
                     ) -> NDArray[np.float64]:
    """``sorted_quantiles`` from some order statistics (1-based rank: value) of ``count``
    values, which must hold those of ``fit_ranks``: the same numbers, bit for bit."""
    below, above, gamma = quantile_positions(count, probabilities)

    def take(positions: NDArray[np.intp]) -> NDArray[np.float64]:
        return np.array([order[int(i) % count + 1] for i in positions], dtype=np.float64)

    return interpolate(take(below), take(above), gamma)


def fit_numeric(values: pd.Series | NDArray[np.generic], *, in_place: bool = False
                ) -> NumericProfile:
    """Fit a numeric column: one sort, then everything is read off the sorted values.

    ``in_place=True`` sorts a float64 array of ``values`` where it is (the caller gives it
    up) and the profile keeps it, instead of sorting a copy.
    """
    raw = as_float(values)
    if in_place and raw.flags.writeable:
        clean = sorted_finite(raw, raw).values
    else:
        clean = sorted_finite(raw).values
        if clean.size < raw.size:
            clean = clean.copy()  # do not keep the NaN and infinities it was cut from
    n_present = int(clean.size)
    n_missing = int(raw.size - n_present)
    if n_present == 0:
        empty = np.empty(0, dtype=np.float64)
        return NumericProfile(
            sorted_values=empty, n_present=0, n_missing=n_missing, n_unique=0,
            mean=float("nan"), std=float("nan"), minimum=float("nan"), maximum=float("nan"),
            lower_quartile=float("nan"), upper_quartile=float("nan"), bin_edges=empty,
            bin_counts=np.zeros(1, dtype=np.int64),
        )
    n_unique = count_distinct(clean)
    mean, std = moments(clean)
    lower_quartile, upper_quartile = (float(q) for q in sorted_quantiles(clean, QUARTILES))
    edges = np.unique(sorted_quantiles(clean, EDGE_PROBABILITIES))
    profile = NumericProfile(
        sorted_values=clean, n_present=n_present, n_missing=n_missing, n_unique=n_unique,
        mean=mean, std=std,
        minimum=float(clean[0]), maximum=float(clean[-1]),
        lower_quartile=lower_quartile, upper_quartile=upper_quartile,
        bin_edges=edges.astype(np.float64), bin_counts=np.zeros(1, dtype=np.int64),
    )
    counts = profile.bin_sorted(clean)
    return NumericProfile(
        sorted_values=clean, n_present=n_present, n_missing=n_missing, n_unique=n_unique,
        mean=profile.mean, std=profile.std, minimum=profile.minimum, maximum=profile.maximum,
        lower_quartile=lower_quartile, upper_quartile=upper_quartile,
        bin_edges=profile.bin_edges, bin_counts=counts,
    )


def grid_ranks(count: int, steps: int) -> NDArray[np.int64]:
    """The 1-based ranks of a quantile grid's order statistics among ``count`` sorted
    values: ``max(1, ceil(k * count / steps))`` for ``k = 0..steps``."""
    scaled = np.arange(steps + 1, dtype=np.int64) * count
    return np.maximum(-((-scaled) // steps), 1)


def aggregated_numeric(*, n_present: int, n_missing: int, n_unique: int, total: float,
                       centred_squares: float, minimum: float, maximum: float,
                       order: dict[int, float], bin_counts: Sequence[int],
                       steps: int) -> NumericProfile:
    """``fit_numeric``'s profile from what a database returns of a column (``sql.pushdown``
    on the reference): its finite values' count, distinct count, sum, squared deviations
    about ``total / n_present``, extremes, bin counts on ``aggregated_edges``' edges, and
    order statistics by 1-based rank: those of ``fit_ranks`` (quartiles and edges, the
    same numbers as from the values) and those of the ``steps``-step grid
    (``grid_ranks``). Mean and std agree with the values' own to rounding (the database
    sums in its own order)."""
    if n_present == 0:
        profile = fit_numeric(np.empty(0, dtype=np.float64))
        return dataclasses.replace(profile, n_missing=n_missing)
    lower_quartile, upper_quartile, edges = aggregated_edges(order, n_present)
    ranks = grid_ranks(n_present, steps)
    grid = np.array([order[int(r)] for r in ranks], dtype=np.float64)
    quantiles: NDArray[np.float64] | None = None
    if n_present <= steps:  # the grid's ranks are 1..n: every value
        _, first = np.unique(ranks, return_index=True)
        values = grid[first]
    else:
        quantiles = grid
        with np.errstate(over="ignore"):
            values = np.asarray(grid[:-1] / 2.0 + grid[1:] / 2.0, dtype=np.float64)
    mean = total / n_present
    return NumericProfile(
        sorted_values=values, n_present=n_present, n_missing=n_missing, n_unique=n_unique,
        mean=mean, std=math.sqrt(centred_squares / n_present), minimum=minimum,
        maximum=maximum, lower_quartile=lower_quartile, upper_quartile=upper_quartile,
        bin_edges=edges, bin_counts=np.asarray(bin_counts, dtype=np.int64),
        quantiles=quantiles)


def aggregated_edges(order: dict[int, float], count: int
                     ) -> tuple[float, float, NDArray[np.float64]]:
    """(lower quartile, upper quartile, interior bin edges) of ``count`` finite values from
    their order statistics of ``fit_ranks``: ``fit_numeric``'s, bit for bit."""
    lower, upper = (float(q) for q in ranked_quantiles(order, count, QUARTILES))
    edges = np.unique(ranked_quantiles(order, count, EDGE_PROBABILITIES))
    return lower, upper, edges.astype(np.float64)


def moments(clean: NDArray[np.float64]) -> tuple[float, float]:
    """Mean and population std of sorted finite values, without overflow near 1e308."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(clean.mean())
        std = _std(clean, mean)
    if math.isfinite(mean) and math.isfinite(std):
        return mean, std
    scale = max(abs(float(clean[0])), abs(float(clean[-1])))
    scaled = clean / scale
    with np.errstate(over="ignore"):
        scaled_mean = float(scaled.mean())
        return scaled_mean * scale, _std(scaled, scaled_mean) * scale


def _std(values: NDArray[np.float64], mean: float) -> float:
    """Population standard deviation around ``mean``, summed block by block (no
    column-sized temporary)."""
    total = 0.0
    for start in range(0, values.size, FLOAT_BLOCK):
        dev = values[start:start + FLOAT_BLOCK] - mean
        total += float(np.dot(dev, dev))
    return math.sqrt(total / values.size)


def fit_categorical(values: pd.Series | NDArray[np.generic]) -> CategoricalProfile:
    """Count the categories of a column, missing values (None, NaN, NA) dropped.

    Each value is named by a string and values with the same name are one category:
    strings as they are, booleans "True"/"False", numbers by ``number_names`` (so equal
    numbers are one category and distinct numbers two, whatever their dtype: the integer 1
    and the float 1.0 are "1", 0.5 is "0.5", +inf and -inf are categories "inf" and
    "-inf"). Categories are sorted by name.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    fast = _count_labels(series)
    if fast is not None:
        return fast
    if series.dtype.kind == "f":
        return _count_floats(as_float(series))
    missing = series.isna()
    present = series[~missing]
    if isinstance(present.dtype, pd.CategoricalDtype):
        # One name per category, the counts of categories that share a name added up.
        counted = present.value_counts(sort=False)
        counted = counted[counted.to_numpy() > 0]
        names = pd.Index([_name(label) for label in counted.index], dtype=object)
        counts = pd.Series(counted.to_numpy(dtype=np.int64), index=names)
        counts = counts.groupby(level=0, sort=False).sum()
    else:
        counts = present.map(_name).value_counts(sort=False)
    return _sorted_profile(counts.index.to_numpy(dtype=str),
                           np.asarray(counts.to_numpy(), dtype=np.int64), int(missing.sum()))


def number_names(values: NDArray[np.float64]) -> NDArray[np.str_]:
    """The category names of float values (not NaN), one for each distinct number.

    A whole number is named by its decimal digits, at any size ("2", not "2.0", so that a
    float column of whole numbers and an integer column of the same numbers share
    categories; 1e20 is "100000000000000000000", never cast to a 64-bit integer), any other
    finite number by the shortest decimal that reads back as the same float ("0.5"), and the
    infinities are "inf" and "-inf". -0.0 and 0.0 are equal and both "0".
    """
    named = np.empty(values.size, dtype=object)
    whole = np.isfinite(values) & (np.floor(values) == values)
    named[~whole] = [repr(value) for value in values[~whole].tolist()]  # shortest round trip
    small = whole & (np.abs(values) < 2.0 ** 63)  # exactly representable in int64
    named[small] = values[small].astype(np.int64).astype(str)
    large = whole & ~small
    if large.any():
        named[large] = [str(int(value)) for value in values[large]]
    return named.astype(str)


def category_names(values: pd.Series) -> list[str]:
    """The category name ``fit_categorical`` gives each value of a column without missing
    values (numbers by ``number_names``, booleans "True"/"False", anything else its
    string)."""
    kind = values.dtype.kind
    if kind == "f":
        return [str(n) for n in number_names(as_float(values))]
    if kind in "iub" and not isinstance(values.dtype, pd.CategoricalDtype):
        return [str(v) for v in values.astype(str)]
    return [_name(v) for v in values]


def _name(value: object) -> str:
    """The category name of one value of an object or categorical column: integers and
    floats as ``number_names`` names them, anything else (booleans too) its string."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _count_floats(values: NDArray[np.float64]) -> CategoricalProfile:
    """``fit_categorical`` of a float column: the values are counted by number (one hash
    pass), and only the distinct numbers are named."""
    counted = pd.Series(values).value_counts(dropna=True, sort=False)
    distinct = counted.index.to_numpy(dtype=np.float64)
    counts = np.asarray(counted.to_numpy(), dtype=np.int64)
    names = number_names(distinct)
    if np.count_nonzero(distinct == 0) > 1:  # -0.0 and 0.0 hashed apart: one number, "0"
        merged = pd.Series(counts).groupby(names, sort=False).sum()
        names = merged.index.to_numpy(dtype=str)
        counts = np.asarray(merged.to_numpy(), dtype=np.int64)
    present = int(counts.sum())
    return _sorted_profile(names, counts, values.size - present)


def _sorted_profile(names: NDArray[np.str_], counts: NDArray[np.int64], missing: int
                    ) -> CategoricalProfile:
    """A ``CategoricalProfile`` of distinct names and their counts, sorted by name."""
    order = np.argsort(names, kind="stable")
    counted = np.asarray(counts[order], dtype=np.int64)
    return CategoricalProfile(
        categories=tuple(str(c) for c in names[order]),
        counts=counted,
        n_present=int(counted.sum()),
        n_missing=missing,
    )


def _count_labels(series: pd.Series) -> CategoricalProfile | None:
    """Counts from one pass over the column, when its values are strings, integers or
    booleans: then equal values are equal strings and distinct values distinct strings, so
    counting the values and then naming them gives ``fit_categorical``'s answer without
    converting every value to a string. None for other columns (floats, mixed objects,
    pandas categoricals), which take the general path."""
    kind = series.dtype.kind
    if kind not in "iubO" or isinstance(series.dtype, pd.CategoricalDtype):
        return None
    labels, counts = _distinct(series)
    # Objects must all be strings: hashing counts True and 1 as one value, which the
    # general path names apart ("True", "1").
    if kind == "O" and not all(isinstance(label, str) for label in labels):
        return None
    names = labels.astype(str)
    order = np.argsort(names, kind="stable")
    counted = np.asarray(counts[order], dtype=np.int64)
    present = int(counted.sum())
    return CategoricalProfile(
        categories=tuple(str(c) for c in names[order]),
        counts=counted,
        n_present=present,
        n_missing=int(series.size - present),
    )


def _distinct(series: pd.Series) -> tuple[NDArray[np.generic], NDArray[np.int64]]:
    """The distinct values of a column of strings, integers or booleans and how often each
    occurs, missing values (None, NaN, NA) dropped: ``value_counts(dropna=True)`` without
    its Series and Index, which cost more than the counting on a window of a few hundred
    rows. A numpy integer or boolean column is counted by ``np.unique``, a string column
    that pyarrow holds by pyarrow's ``value_counts`` (what pandas' calls), any other by
    ``pd.factorize``."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        values, counts = np.unique(series.to_numpy(), return_counts=True)
        return values, np.asarray(counts, dtype=np.int64)
    if _arrow_strings(dtype):
        import pyarrow
        import pyarrow.compute

        counted = pyarrow.compute.value_counts(pyarrow.array(series.array))
        found = counted.field("values")
        tallies = counted.field("counts")
        if found.null_count:
            known = found.is_valid()
            found, tallies = found.filter(known), tallies.filter(known)
        return (found.to_numpy(zero_copy_only=False),
                np.asarray(tallies.to_numpy(), dtype=np.int64))
    codes, uniques = pd.factorize(series)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return np.asarray(uniques), np.asarray(counts, dtype=np.int64)


def _arrow_strings(dtype: object) -> bool:
    """Whether a column of this dtype holds its strings in a pyarrow array (pandas 3's
    default ``str``, ``string[pyarrow]``)."""
    return isinstance(dtype, pd.StringDtype) and dtype.storage in ("pyarrow", "pyarrow_numpy")


def align(reference: CategoricalProfile, current: CategoricalProfile
          ) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[str, ...]]:
    """Counts of both sides over the union of their categories (reference order first)."""
    index = {c: i for i, c in enumerate(reference.categories)}
    extra = [c for c in current.categories if c not in index]
    cats = reference.categories + tuple(extra)
    for category in extra:
        index[category] = len(index)
    ref = np.zeros(len(cats), dtype=np.int64)
    ref[: len(reference.categories)] = reference.counts
    cur = np.zeros(len(cats), dtype=np.int64)
    cur[[index[category] for category in current.categories]] = current.counts
    return ref, cur, cats
