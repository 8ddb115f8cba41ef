"""The two-sample Cramer-von Mises test: the integrated squared gap between the empirical
CDFs, from binary searches in the sorted reference.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: the method compares the reference's sorted values with the current window
and returns the statistic and its p-value. ``scipy.stats.cramervonmises_2samp`` is the
reference for both numbers and the tests under ``tests/unit/stats`` hold us to 1e-9, with
one documented exception: tied data, where scipy is wrong (``ties`` gives the p-value).
It ranks the pooled sample on every call, so it is not called on a score unless the
installed scipy lacks the private helpers (``scipy_private``) that give the null
distribution from the statistic and the two sizes alone.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelmon.stats.drift.base import register
from modelmon.stats.drift.ecdf import has_ties, merge_sorted, run_ends
from modelmon.stats.drift.ks import KsDistanceEffect
from modelmon.stats.drift.scipy_private import lazy_helpers
from modelmon.stats.drift.ties import quadratic_tied_pvalue, tied_runs
from modelmon.stats.profile import NumericProfile

#: Looked up on first use (``__getattr__``), as scipy.stats is slow to import:
#: ``_CVM_EXACT``, scipy's exact two-sample Cramer-von Mises p-value from (U, n1, n2), and
#: ``_CVM_LIMIT_CDF``, its CDF of the limiting distribution (a numpy array in and out).
_LAZY = {"_CVM_EXACT": ("scipy.stats._hypotests", "_pval_cvm_2samp_exact"),
         "_CVM_LIMIT_CDF": ("scipy.stats._hypotests", "_cdf_cvm_inf")}

__getattr__, _lazy = lazy_helpers(globals(), _LAZY)


def cvm_statistic(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
                  ) -> float:
    """Two-sample Cramer-von Mises T in its ECDF form (Anderson 1962):
    ``n*m/N^2 * sum over the N pooled values of (F_ref - F_cur)^2``.

    Without ties it equals scipy's rank formula (to rounding); with ties it evaluates both
    right-continuous ECDFs at each tied value, so identical samples give T = 0.
    """
    n_ref = reference_sorted.size
    n_cur = current_sorted.size
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    ends = np.flatnonzero(run_ends(merged))
    cur_count = np.cumsum(is_cur)[ends]
    gap = (ends + 1 - cur_count) / n_ref - cur_count / n_cur
    run_length = np.diff(ends, prepend=-1)
    total = n_ref + n_cur
    return n_ref * n_cur / (total * total) * float(np.dot(run_length, gap * gap))


def cvm_rank_statistic(reference_sorted: NDArray[np.float64],
                       current_sorted: NDArray[np.float64]) -> float:
    """scipy's ``U`` (Anderson 1962, eq. 10) for two samples with no value in common and
    none repeated: ``n * sum_i (r_i - i)^2 + m * sum_j (s_j - j)^2`` over the pooled ranks
    ``r`` of the reference and ``s`` of the window.

    ``s_j - j`` is the number of reference values below current value ``j``: one binary
    search each. ``r_i - i`` is the number of current values below reference value ``i``,
    which is ``j`` for every reference value between current values ``j - 1`` and ``j``:
    the gaps between those searches count how often each ``j`` occurs, so the reference is
    never walked value by value. O(m log n); every term is an integer, as in scipy.
    """
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    below = np.searchsorted(reference_sorted, current_sorted).astype(np.float64)
    occurs = np.diff(below, prepend=0.0, append=float(n_ref))
    cur_index = np.arange(n_cur + 1, dtype=np.float64)
    return (n_ref * float(np.einsum("i,i,i->", occurs, cur_index, cur_index))
            + n_cur * float(np.einsum("i,i->", below, below)))


def cvm_from_rank_statistic(u_value: float, n_ref: int, n_cur: int) -> float:
    """T from U (Anderson 1962, eq. 9): ``U / (n m N) - (4 n m - 1) / (6 N)``."""
    prod, total = n_ref * n_cur, n_ref + n_cur
    return u_value / (prod * total) - (4 * prod - 1) / (6 * total)


def cvm_limit_cdf(value: float, terms: int = 64) -> float:
    """CDF of the limiting Cramer-von Mises distribution (Anderson and Darling 1952; the
    series in Csorgo and Faraway 1996, eq. 1.2), summed to convergence."""
    term = np.arange(terms)
    four_k_plus_one = 4.0 * term + 1.0
    bessel_arg = four_k_plus_one * four_k_plus_one / (16.0 * value)
    coef = np.exp(special.gammaln(term + 0.5) - special.gammaln(term + 1.0))
    # exp(-q) * K_1/4(q) written with the scaled Bessel function to avoid underflow noise.
    series = (coef * np.sqrt(four_k_plus_one) * special.kve(0.25, bessel_arg)
              * np.exp(-2.0 * bessel_arg))
    return float(np.sum(series)) / (math.pi * math.sqrt(math.pi * value))


def _limit_cdf(value: float) -> float:
    """The limiting Cramer-von Mises CDF as scipy evaluates it (its series stops once a
    term is below 1e-7; within 3e-10 of ``cvm_limit_cdf``, which is the fallback)."""
    limit_cdf = _lazy("_CVM_LIMIT_CDF")
    if limit_cdf is not None:
        try:
            return float(limit_cdf(np.asarray(value, dtype=np.float64)))
        except TypeError:
            pass
    return cvm_limit_cdf(value)


def cvm_asymptotic_pvalue(t_value: float, n_ref: int, n_cur: int) -> float:
    """p-value of T from its mean and variance under the null (Anderson 1962, eqs. 11, 14)
    and the limiting distribution, as scipy's asymptotic method does."""
    total, prod = n_ref + n_cur, n_ref * n_cur
    mean = (1.0 + 1.0 / total) / 6.0
    var = (total + 1.0) * (4.0 * prod * total - 3.0 * (n_ref * n_ref + n_cur * n_cur) - 2.0 * prod)
    var /= 45.0 * total * total * 4.0 * prod
    standard = 1.0 / 6.0 + (t_value - mean) / math.sqrt(45.0 * var)
    if standard < 0.003:  # the limiting CDF is below 1e-17 there
        return 1.0
    return max(1.0 - _limit_cdf(standard), 0.0)


def cvm_exact_pvalue(u_value: float, n_ref: int, n_cur: int) -> float | None:
    """scipy's exact p-value of U for samples of ``n_ref`` and ``n_cur`` values (what
    ``cramervonmises_2samp`` uses when both have at most 20); None when the installed
    scipy lacks the helper (or its signature changed)."""
    exact = _lazy("_CVM_EXACT")
    if exact is None:
        return None
    try:
        return float(exact(np.float64(u_value), n_ref, n_cur))
    except TypeError:
        return None


#: ``cramervonmises_2samp(method="auto")`` is exact up to this many values on both sides.
CVM_EXACT_MAX_N = 20


@register
class CramerVonMises(KsDistanceEffect):
    """Two-sample Cramer-von Mises test: the integrated squared gap between the ECDFs.

    Without ties this is ``scipy.stats.cramervonmises_2samp`` (p-value exact when both
    sides have at most 20 values, asymptotic otherwise), its rank statistic counted from
    binary searches in the sorted reference (``cvm_rank_statistic``). With ties scipy's
    midrank formula is wrong when the sample sizes differ (measured: every undrifted
    column rounded to one decimal flagged at 5000 vs 500 rows), so tied samples use the
    ECDF form of the same statistic. Its continuous p-value is off on tied data (measured
    at alpha = 0.05: 0.07-0.14 flagged on geometric counts and on half zeros), so the
    p-value of a tied sample (``ties.tied_runs``) comes from the statistic's limit given
    the pooled values (``ties.quadratic_tied_pvalue``); the message says so. Drift when p
    < 0.05, the conventional
    significance level. Needs at least two values on each side.
    """

    name = "cvm"
    kind = "numeric"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("Two-sample Cramer-von Mises test: integrated squared gap between the "
               "empirical CDFs; drift when p < 0.05 (conventional significance level).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        if reference.n_present < 2 or current.size < 2:
            return math.nan, math.nan
        current_sorted = current
        n_ref, n_cur = reference.n_present, int(current_sorted.size)
        if has_ties(reference.sorted_values, reference.n_unique, current_sorted):
            t_value = cvm_statistic(reference.sorted_values, current_sorted)
            runs = tied_runs(reference, current_sorted)
            if runs is None:
                return t_value, cvm_asymptotic_pvalue(t_value, n_ref, n_cur)
            return t_value, quadratic_tied_pvalue(t_value, runs, "cvm")
        u_value = cvm_rank_statistic(reference.sorted_values, current_sorted)
        t_value = cvm_from_rank_statistic(u_value, n_ref, n_cur)
        if max(n_ref, n_cur) > CVM_EXACT_MAX_N:
            return t_value, cvm_asymptotic_pvalue(t_value, n_ref, n_cur)
        p_value = cvm_exact_pvalue(u_value, n_ref, n_cur)
        if p_value is not None:
            return t_value, p_value
        from scipy import stats

        res = stats.cramervonmises_2samp(reference.sorted_values, current_sorted)
        return float(res.statistic), float(res.pvalue)

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        if reference.n_present < 2 or current.size < 2:
            return "not scored: cvm needs at least two values on each side"
        if tied_runs(reference, current) is not None:
            return ("tied values: statistic from the ECDFs, p-value from its limit given "
                    "the pooled values")
        return None
