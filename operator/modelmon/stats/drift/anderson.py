"""The k-sample Anderson-Darling test (Scholz and Stephens 1987) on two samples: its
midrank statistic read off the merge of the sorted reference and window.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: the method compares the reference's sorted values with the current window
and returns the standardised statistic and its p-value. ``scipy.stats.anderson_ksamp``
(midrank variant) is the reference for both numbers and the tests under
``tests/unit/stats`` hold us to 1e-9; it ranks the pooled sample on every call, so the
statistic, its null variance and scipy's table interpolation are computed here instead.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.drift.base import register
from modelmon.stats.drift.ecdf import merge_sorted, run_ends
from modelmon.stats.drift.ks import KsDistanceEffect
from modelmon.stats.drift.ties import quadratic_tied_pvalue, tied_runs
from modelmon.stats.profile import NumericProfile

#: The range to which scipy's interpolated Anderson-Darling p-value is clipped.
ANDERSON_P_CAP = 0.25
ANDERSON_P_FLOOR = 0.001

#: Significance levels of Scholz and Stephens' (1987) Table 2, and the coefficients of
#: their interpolation ``t_m(alpha) = b0 + b1 / sqrt(m) + b2 / m`` of its critical values
#: in ``m``, the number of samples less one.
ANDERSON_LEVELS = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])
_B0 = np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
_B1 = np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615])
_B2 = np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154])
#: Critical values for two samples (m = 1), ascending as the levels fall.
ANDERSON_CRITICAL = _B0 + _B1 + _B2
#: scipy's p-value between the table's ends: log(alpha) as a least-squares quadratic in
#: the critical value over the seven levels (highest power first).
_ANDERSON_LOG_LEVEL = np.polyfit(ANDERSON_CRITICAL, np.log(ANDERSON_LEVELS), 2)


def anderson_midrank(reference_sorted: NDArray[np.float64],
                     current_sorted: NDArray[np.float64]) -> float:
    """Scholz and Stephens' midrank statistic ``A2akN`` (1987, eq. 7) for two samples.

    Over the distinct pooled values ``z``, with ``l`` pooled copies of ``z``, ``B`` the
    pooled values below it plus ``l / 2``, and for a sample of ``n_i`` values ``M_i`` its
    values below ``z`` plus half its copies of ``z``:
    ``(N - 1) / N^2 * sum_z l / (B (N - B) - N l / 4) * sum_i (N M_i - B n_i)^2 / n_i``.
    Every count is read off the merge of the two sorted samples (``merge_sorted``), so no
    array is sorted or ranked; ties are handled by the midranks as in scipy.
    """
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    total = n_ref + n_cur
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    ends = np.flatnonzero(run_ends(merged))
    upto = (ends + 1).astype(np.float64)
    copies = np.diff(upto, prepend=0.0)
    cur_upto = np.cumsum(is_cur)[ends].astype(np.float64)
    cur_copies = np.diff(cur_upto, prepend=0.0)
    mid = upto - copies / 2.0
    weight = copies / (mid * (total - mid) - total * copies / 4.0)
    sum_over_samples = 0.0
    for size, sample_upto, sample_copies in ((n_ref, upto - cur_upto, copies - cur_copies),
                                             (n_cur, cur_upto, cur_copies)):
        gap = total * (sample_upto - sample_copies / 2.0) - mid * size
        sum_over_samples += float(np.einsum("i,i,i->", weight, gap, gap)) / size
    return sum_over_samples * (total - 1.0) / total / total


@functools.lru_cache(maxsize=64)
def _anderson_harmonic_sums(total: int) -> tuple[float, float]:
    """Scholz and Stephens' ``h = sum_{i=1}^{N-1} 1/i`` and
    ``g = sum_{i=1}^{N-2} sum_{j=i+1}^{N-1} 1 / ((N - i) j)`` for ``N`` pooled values.

    Taken in the order of ``j``: the sum over ``i < j`` of ``1 / (N - i)`` grows by one
    term per step, ``1/(N-1), 1/(N-1) + 1/(N-2), ...``, a running sum; ``h`` is its last
    value plus 1. O(N), once per pooled size.
    """
    inner = np.cumsum(1.0 / np.arange(total - 1, 1, -1, dtype=np.float64))
    h_sum = float(inner[-1]) + 1.0
    g_sum = float(np.sum(inner / np.arange(2, total, dtype=np.float64)))
    return h_sum, g_sum


def anderson_standardised(a2akn: float, n_ref: int, n_cur: int) -> float:
    """``(A2akN - (k - 1)) / sigma_N`` for k = 2 samples of ``n_ref`` and ``n_cur`` values,
    with the exact null variance of Scholz and Stephens (1987, eq. 4), whose ``h``, ``g``
    and ``a`` to ``d`` are ``h_sum``, ``g_sum`` and ``coef_a`` to ``coef_d`` here;
    ``n_ref + n_cur >= 4``."""
    k_samples, total = 2, n_ref + n_cur
    h_sum, g_sum = _anderson_harmonic_sums(total)
    inv = 1.0 / n_ref + 1.0 / n_cur
    coef_a = (4 * g_sum - 6) * (k_samples - 1) + (10 - 6 * g_sum) * inv
    coef_b = ((2 * g_sum - 4) * k_samples**2 + 8 * h_sum * k_samples
              + (2 * g_sum - 14 * h_sum - 4) * inv - 8 * h_sum + 4 * g_sum - 6)
    coef_c = ((6 * h_sum + 2 * g_sum - 2) * k_samples**2
              + (4 * h_sum - 4 * g_sum + 6) * k_samples + (2 * h_sum - 6) * inv + 4 * h_sum)
    coef_d = (2 * h_sum + 6) * k_samples**2 - 4 * h_sum * k_samples
    variance = ((coef_a * total**3 + coef_b * total**2 + coef_c * total + coef_d)
                / ((total - 1.0) * (total - 2.0) * (total - 3.0)))
    return (a2akn - (k_samples - 1)) / math.sqrt(variance)


def anderson_pvalue(standardised: float) -> float:
    """scipy's p-value for the standardised two-sample statistic: interpolated from the
    table's critical values (``_ANDERSON_LOG_LEVEL``) and held to [0.001, 0.25] outside
    them, where the table says nothing more."""
    if standardised < ANDERSON_CRITICAL[0]:
        return ANDERSON_P_CAP
    if standardised > ANDERSON_CRITICAL[-1]:
        return ANDERSON_P_FLOOR
    return math.exp(float(np.polyval(_ANDERSON_LOG_LEVEL, standardised)))


@register
class AndersonDarling(KsDistanceEffect):
    """k-sample Anderson-Darling test (Scholz and Stephens 1987) on the two samples.

    ``scipy.stats.anderson_ksamp`` with the midrank variant (its historical default, for
    data with ties), computed from the sorted reference and window (``anderson_midrank``,
    ``anderson_standardised``). A test on the empirical CDFs like ``ks`` and ``cvm``, it
    weighs the tails more than KS does. Its p-value is interpolated from a table and
    clipped to [0.001, 0.25] (``anderson_pvalue``; scipy warns, we say so in the result's
    message instead). On tied data (``ties.tied_runs``) that table is liberal (measured
    at alpha = 0.05: up to 0.095 flagged on half zeros, 0.07-0.09 on counts), so the
    p-value there comes from the midrank statistic's limit given the pooled values
    (``ties.quadratic_tied_pvalue``), unclipped. Drift when p < 0.05, the conventional
    significance level, which lies well inside the table. Needs at least four values in
    all and two distinct values.
    """

    name = "anderson"
    kind = "numeric"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("k-sample Anderson-Darling test (tail-weighted CDF distance); drift when "
               "p < 0.05 (conventional significance level); p clipped to [0.001, 0.25].")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        if _anderson_problem(reference, current) is not None:
            return math.nan, math.nan
        a2akn = anderson_midrank(reference.sorted_values, current)
        standardised = anderson_standardised(a2akn, reference.n_present, int(current.size))
        runs = tied_runs(reference, current)
        if runs is None:
            return standardised, anderson_pvalue(standardised)
        total = reference.n_present + current.size
        return standardised, quadratic_tied_pvalue(a2akn * total / (total - 1.0), runs,
                                                   "anderson")

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        problem = _anderson_problem(reference, current)
        if problem is not None:
            return problem
        if tied_runs(reference, current) is not None:
            return ("tied values: p-value from the midrank statistic's limit given the "
                    "pooled values")
        if p_value == ANDERSON_P_CAP:
            return "p-value capped at 0.25 by scipy's table: the true value is larger"
        if p_value == ANDERSON_P_FLOOR:
            return "p-value floored at 0.001 by scipy's table: the true value is smaller"
        return None


def _anderson_problem(reference: NumericProfile, current: NDArray[np.float64]
                      ) -> str | None:
    """Why the Anderson-Darling statistic is undefined for these samples, if it is."""
    if reference.n_present + current.size < 4:
        return "not scored: anderson needs at least four values in all"
    first = reference.sorted_values[0]
    if reference.sorted_values[-1] == first and bool(np.all(current == first)):
        return "not scored: all values are equal on both sides (no drift)"
    return None
