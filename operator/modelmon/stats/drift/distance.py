"""Distances between empirical CDFs: normed Wasserstein-1 and the energy distance.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: both distances integrate a power of ``|F_ref - F_cur|``. Wasserstein-1 is
the area between the two quantile functions, which pairs the reference's sorted values
with the sorted current window by index arithmetic alone (no search, no merge, and
temporaries of a fixed block size); the energy distance walks the merged support
(``ecdf.merge_sorted``, one binary search per current value). Neither re-sorts the
reference, and the numbers agree with ``scipy.stats.wasserstein_distance`` and
``scipy.stats.energy_distance``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.drift.base import NumericMethod, register
from modelmon.stats.drift.ecdf import merge_sorted
from modelmon.stats.profile import NumericProfile, scratch


def cdf_gaps(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``|F_ref - F_cur|`` on each interval of the merged support, and the interval widths.

    Within a run of equal values the widths are zero, so the order of ties in the merge
    does not matter; at the end of a run both running counts are the right-continuous ECDF
    counts scipy uses, so the terms are scipy's.
    """
    n_ref = reference_sorted.size
    n_cur = current_sorted.size
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    cur_count = np.cumsum(is_cur)[:-1]
    ref_count = np.arange(1, n_ref + n_cur) - cur_count
    gaps = np.abs(ref_count / n_ref - cur_count / n_cur)
    with np.errstate(over="ignore", invalid="ignore"):
        widths = np.diff(merged)
    return gaps, widths


#: Breakpoints handled per block by ``wasserstein``: its temporaries stay a few blocks in
#: size however long the windows are.
W_BLOCK = 1 << 16


def wasserstein(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
                ) -> float:
    """Wasserstein-1 distance: the area between the two empirical CDFs, computed as the
    area between the two quantile functions (the same area, integrated along the other
    axis), which needs no merge of the samples: ``sum |r[i] - c[k]| * length`` over the
    intervals between the two samples' breakpoints ``i/n`` and ``j/m``. O(n + m) once both
    sides are sorted.

    The intervals are generated block by block (``W_BLOCK`` breakpoints at a time) rather
    than all at once, so the memory this takes does not grow with the window. When both
    sides have the same size every interval pairs ``r[i]`` with ``c[i]`` and has the same
    length, and the distance is the mean absolute difference of the sorted samples.
    """
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    total = 0.0
    work = scratch(min(max(n_ref, n_cur), W_BLOCK))
    with np.errstate(over="ignore", invalid="ignore"):
        if n_ref == n_cur:
            for start in range(0, n_ref, W_BLOCK):
                stop = min(n_ref, start + W_BLOCK)
                gaps = work[:stop - start]
                np.subtract(reference_sorted[start:stop], current_sorted[start:stop], out=gaps)
                total += float(np.abs(gaps, out=gaps).sum())
            return total / n_ref
        for start in range(0, n_ref, W_BLOCK):
            ref_index = np.arange(start, min(n_ref, start + W_BLOCK), dtype=np.int64)
            cur_paired, lengths = _intervals(ref_index, n_cur, n_ref)
            gaps = work[:ref_index.size]
            np.take(current_sorted, cur_paired, out=gaps)
            np.subtract(reference_sorted[start:start + ref_index.size], gaps, out=gaps)
            # einsum, not np.dot: BLAS would spin up threads for one pass over the column.
            total += float(np.einsum("i,i->", np.abs(gaps, out=gaps), lengths))
        for start in range(0, n_cur, W_BLOCK):
            cur_index = np.arange(start, min(n_cur, start + W_BLOCK), dtype=np.int64)
            # the others coincide with a reference breakpoint
            cur_index = cur_index[((cur_index + 1) * n_ref) % n_cur != 0]
            ell, lengths = _intervals(cur_index, n_ref, n_cur)
            gaps = work[:cur_index.size]
            np.take(reference_sorted, ell, out=gaps)
            np.subtract(current_sorted[cur_index], gaps, out=gaps)
            total += float(np.einsum("i,i->", np.abs(gaps, out=gaps), lengths))
        return total / n_ref / n_cur


def _intervals(index: NDArray[np.int64], other: int, size: int
               ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """For breakpoints ``(index + 1) / size`` of one sample: the other sample's index on the
    interval ending there, and the interval's length in units of ``1 / (size * other)``."""
    upper = (index + 1) * other
    paired = -((-upper) // size) - 1
    lengths = (upper - np.maximum(index * other, paired * size)).astype(np.float64)
    return paired, lengths


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
        distance = wasserstein(reference.sorted_values, current)
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
        return energy(reference.sorted_values, current), None
