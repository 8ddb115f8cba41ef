"""Distances between empirical CDFs: normed Wasserstein-1 and the energy distance.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: both distances integrate a power of ``|F_ref - F_cur|``. Wasserstein-1 is
the area between the two quantile functions, which pairs the reference's sorted values
with the sorted current window by index arithmetic alone (``quantile_pairs``: no search,
no merge); the energy distance walks the merged support (``ecdf.merge_sorted``, one binary
search per current value). Neither re-sorts the reference, and the numbers agree with
``scipy.stats.wasserstein_distance`` and ``scipy.stats.energy_distance``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.drift.base import NumericMethod, register
from modelmon.stats.drift.ecdf import merge_sorted
from modelmon.stats.profile import NumericProfile, ascending, scratch


def cdf_gaps(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``|F_ref - F_cur|`` on each interval of the merged support, and the interval widths.

    Within a run of equal values the widths are zero, so the order of ties in the merge
    does not matter; at the end of a run both running counts are the right-continuous ECDF
    counts scipy uses, so the terms are scipy's.
    """
    n = reference_sorted.size
    m = current_sorted.size
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    cur_count = np.cumsum(is_cur)[:-1]
    ref_count = np.arange(1, n + m) - cur_count
    gaps = np.abs(ref_count / n - cur_count / m)
    with np.errstate(over="ignore", invalid="ignore"):
        widths = np.diff(merged)
    return gaps, widths


@dataclass(frozen=True, slots=True)
class QuantilePairs:
    """How the quantile functions of an n-sample and an m-sample pair up.

    The ECDF inverse of a sorted sample ``r`` of size n is ``r[i]`` on ``(i/n, (i+1)/n]``.
    The two samples' breakpoints ``i/n`` and ``j/m`` split (0, 1] into at most n + m
    intervals on each of which both inverses are constant. Each interval ends at a
    reference breakpoint ``(i+1)/n`` (then the current index on it is
    ``k = ceil((i+1) m / n) - 1``) or, where the two do not coincide, at a current
    breakpoint ``(j+1)/m`` (reference index ``l = ceil((j+1) n / m) - 1``). The interval
    lengths are kept as integer multiples of ``1/(n m)``, so they are exact.
    """

    k: NDArray[np.int64] | None
    """Current index on the interval ending at each reference breakpoint; None when it is
    the reference index itself (n == m)."""
    ref_lengths: NDArray[np.float64]
    cur_j: NDArray[np.int64]
    """Current breakpoints that are no reference breakpoint."""
    cur_l: NDArray[np.int64]
    """Reference index on the interval ending at each of them."""
    cur_lengths: NDArray[np.float64]


@functools.lru_cache(maxsize=2)
def quantile_pairs(n: int, m: int) -> QuantilePairs:
    """The interval layout for sizes (n, m), computed once for all the columns of a window
    that have the same numbers of values."""
    i = np.arange(n, dtype=np.int64)
    k = -((-(i + 1) * m) // n) - 1
    ref_lengths = ((i + 1) * m - np.maximum(i * m, k * n)).astype(np.float64)
    j = np.arange(m, dtype=np.int64)
    j = j[((j + 1) * n) % m != 0]
    ell = -((-(j + 1) * n) // m) - 1
    cur_lengths = ((j + 1) * n - np.maximum(j * n, ell * m)).astype(np.float64)
    return QuantilePairs(None if n == m else k, ref_lengths, j, ell, cur_lengths)


def wasserstein(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
                ) -> float:
    """Wasserstein-1 distance: the area between the two empirical CDFs, computed as the
    area between the two quantile functions (the same area, integrated along the other
    axis), which needs no merge of the samples: ``sum |r[i] - c[k]| * length`` over the
    intervals of ``quantile_pairs``. O(n + m) once both sides are sorted."""
    n, m = reference_sorted.size, current_sorted.size
    pairs = quantile_pairs(n, m)
    extra = pairs.cur_j.size
    work = scratch(max(n, 2 * extra))
    with np.errstate(over="ignore", invalid="ignore"):
        gaps = work[:n]
        if pairs.k is None:
            np.subtract(reference_sorted, current_sorted, out=gaps)
        else:
            np.take(current_sorted, pairs.k, out=gaps)
            np.subtract(reference_sorted, gaps, out=gaps)
        # einsum, not np.dot: BLAS would spin up threads for one pass over the column.
        total = float(np.einsum("i,i->", np.abs(gaps, out=gaps), pairs.ref_lengths))
        if extra:
            gaps, other = work[:extra], work[extra:2 * extra]
            np.take(current_sorted, pairs.cur_j, out=gaps)
            np.take(reference_sorted, pairs.cur_l, out=other)
            np.subtract(gaps, other, out=gaps)
            total += float(np.einsum("i,i->", np.abs(gaps, out=gaps), pairs.cur_lengths))
        return total / n / m


def energy(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
           ) -> float:
    """Energy distance ``sqrt(2 * integral (F_ref - F_cur)^2)``, scipy's definition."""
    gaps, widths = cdf_gaps(reference_sorted, current_sorted)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(2.0) * np.sqrt(np.dot(np.square(gaps), widths)))


def _has_scale(reference: NumericProfile) -> bool:
    return math.isfinite(reference.std) and reference.std > 0


@register
class NormedWasserstein(NumericMethod):
    """Wasserstein-1 (earth mover's) distance divided by the reference's standard deviation.

    Normalising by the population standard deviation (ddof=0, ``profile.std``) makes the
    distance unit-free: 0.1 means the current window's mass moved a tenth of a reference
    standard deviation on average. Drift at 0.1 or more: Evidently's default for this
    method and for its large-data numeric columns. A constant reference (std 0, or a std
    that overflows) gives no scale; the raw distance is then reported (divided by 1) and the
    message says so.
    """

    name = "wasserstein"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = ("Wasserstein-1 distance in reference standard deviations (ddof=0); drift at "
               ">= 0.1 (Evidently's default for normed Wasserstein).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        distance = wasserstein(reference.sorted_values, ascending(current))
        scale = reference.std if _has_scale(reference) else 1.0
        return distance / scale, None

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        if _has_scale(reference):
            return None
        return ("the reference has no spread (standard deviation 0 or not finite): "
                "the distance is not normalised")


@register
class Energy(NumericMethod):
    """Energy distance between the two samples, exactly ``scipy.stats.energy_distance``.

    ``sqrt(2 * integral (F_ref - F_cur)^2 dx)`` (Szekely's energy distance for 1-D data);
    kept in the data's units like scipy, not normalised, so the 0.1 default (Evidently's
    default for this method) suits columns whose scale is around 1. Set a per-feature
    threshold for other scales, or prefer ``wasserstein``, which is normalised.
    """

    name = "energy"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = ("Energy distance (scipy's definition, in the data's units); drift at >= 0.1 "
               "(Evidently's default); set a threshold suited to the column's scale.")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        return energy(reference.sorted_values, ascending(current)), None
