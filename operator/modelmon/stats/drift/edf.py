"""Tests on empirical distribution functions: Kolmogorov-Smirnov, Cramer-von Mises and
k-sample Anderson-Darling.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: each method compares the reference's sorted values with the current window
and returns a test statistic and its p-value. scipy's functions of the same name are the
reference for both numbers and the tests under ``tests/unit/stats`` hold us to 1e-9, with
one documented exception: Cramer-von Mises on tied data, where scipy is wrong.

scipy's public functions sort both samples (or the pooled one) on every call, so none of
them is called on a score: each statistic is read off the profile's sorted reference and
the current window, sorted once. The null distributions that depend only on the statistic
and the two sizes come from scipy's private helpers where this scipy has them
(``_scipy_helper``); without one the public function is called on the samples instead.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from modelmon.stats.drift.base import NumericMethod, register
from modelmon.stats.drift.ecdf import has_ties, merge_sorted, run_ends
from modelmon.stats.profile import NumericProfile, RankGrid, rank_grid

#: Above this many values on either side scipy's ``ks_2samp(method="auto")`` switches from
#: the exact null distribution to the asymptotic one; we follow the same switch.
KS_EXACT_MAX_N = 10_000

#: ``scipy.special.smirnov(n, x)`` sums the exact one-sided series up to this n (and uses an
#: asymptotic form above); ``smirnov_sf`` gives the same sum without adding up n terms.
SMIRNOV_EXACT_MAX_N = 1_000_000

#: Terms of the series that ``smirnov_sf`` evaluates, whatever n is.
SMIRNOV_POINTS = 256


def _scipy_helper(module: str, name: str) -> Callable[..., Any] | None:
    """A private scipy function, or None when the installed scipy has no such name."""
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if callable(found) else None


#: scipy's exact two-sample KS null distribution from (n1, n2, gcd, D, alternative), as
#: ``ks_2samp`` calls it: returns (success, D rounded to a multiple of 1/lcm, p-value).
_KS_EXACT = _scipy_helper("scipy.stats._stats_py", "_attempt_exact_2kssamp")
#: scipy's exact two-sample Cramer-von Mises p-value from (U, n1, n2).
_CVM_EXACT = _scipy_helper("scipy.stats._hypotests", "_pval_cvm_2samp_exact")
#: scipy's CDF of the limiting Cramer-von Mises distribution (a numpy array in and out).
_CVM_LIMIT_CDF = _scipy_helper("scipy.stats._hypotests", "_cdf_cvm_inf")


def ks_statistic(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64],
                 grid: RankGrid | None = None) -> float:
    """Two-sided KS distance sup|F_ref - F_cur| from two non-empty sorted samples, equal to
    scipy's ``ks_2samp`` statistic bit for bit.

    Both ECDFs are right-continuous steps that only change at pooled values, so the
    supremum is attained at one of them; scipy takes ``count_ref/n - count_cur/m`` at every
    pooled value. Most of them cannot hold it, and bounds say which. ``grid`` (the
    profile's ``RankGrid``, made here when not given) holds reference values with their
    exact ranks: one binary search each in the window, hot in cache after its sort, gives
    the exact difference at each grid value and just below it. Between two grid values
    both ECDFs are monotone, so their values at the ends bound every difference inside;
    only the gaps whose bound exceeds the best exact difference seen are kept. A kept gap
    is a run of window positions: it is cut at every ``KS_SPLIT``-th position (one search
    each in the reference, a new exact difference just below each cut) and bounded again,
    until the blocks left are short enough to evaluate value by value
    (``_ks_block_extremes``). The result is scipy's number, from a few thousand binary
    searches instead of ``n + m``.
    """
    m = current_sorted.size
    if grid is None:
        grid = rank_grid(reference_sorted)
    values = grid.values
    # Window counts below and up to each grid value; exact differences there.
    cur_below = np.searchsorted(current_sorted, values, "left")
    equal = current_sorted[np.minimum(cur_below, m - 1)] == values
    cur_upto = cur_below
    if equal.any():
        # A run of a grid value that reaches the next grid value's position ends there
        # (common when the window has few distinct values); the others are searched.
        cur_upto = cur_below.copy()
        following = np.append(cur_below[1:], m)
        reaches = equal & (current_sorted[np.maximum(following - 1, 0)] == values)
        cur_upto[reaches] = following[reaches]
        rest = equal & ~reaches
        if rest.any():
            cur_upto[rest] = np.searchsorted(current_sorted, values[rest], "right")
    below_ref, upto_ref = grid.below_share, grid.upto_share
    below_cur = cur_below / m
    upto_cur = below_cur if cur_upto is cur_below else cur_upto / m
    seen = max(float(np.abs(below_ref - below_cur).max()),
               float(np.abs(upto_ref - upto_cur).max()))
    # Inside the gap after grid value k the reference counts lie in [upto_k, below_k+1]
    # and the window's in [cur_upto_k, cur_below_k+1].
    bound = np.maximum(below_ref[1:] - upto_cur[:-1], below_cur[1:] - upto_ref[:-1])
    kept = np.flatnonzero(bound > seen)
    start, stop = cur_upto[kept], cur_below[kept + 1]
    ref_low, ref_high = grid.upto[kept], grid.below[kept + 1]
    # A gap without window values has its extremes at its ends, at the grid values.
    inside = stop > start
    start, stop, ref_low, ref_high = (start[inside], stop[inside], ref_low[inside],
                                      ref_high[inside])
    while start.size and int((stop - start).max()) > 2 * KS_SPLIT:
        start, stop, ref_low, ref_high, seen = _ks_split(
            reference_sorted, current_sorted, start, stop, ref_low, ref_high, seen)
    if not start.size:
        return seen
    return max(seen, _ks_block_extremes(reference_sorted, current_sorted, start, stop))


#: Each block of window positions that may hold the KS supremum is cut into this many.
KS_SPLIT = 8


def _ks_split(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64],
              start: NDArray[np.intp], stop: NDArray[np.intp], ref_low: NDArray[np.intp],
              ref_high: NDArray[np.intp], seen: float
              ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp],
                         NDArray[np.intp], float]:
    """Blocks of window positions ``[start, stop)`` cut into ``KS_SPLIT`` parts each, and
    the parts that may still hold the supremum, with the best exact difference seen.

    A block covers the pooled values from its first window value up to (not including)
    the next block's: there the window's count lies in ``[start, stop]`` and the
    reference's in ``[ref_low, ref_high]``. A cut at position ``q`` costs one binary
    search, ``#ref < current[q]``, which bounds both parts it separates; when ``q`` starts
    a run of equal values the difference just below ``current[q]`` is exact too.
    """
    n, m = reference_sorted.size, current_sorted.size
    cuts = np.arange(KS_SPLIT + 1)
    at = start[:, None] + ((stop - start)[:, None] * cuts) // KS_SPLIT
    ref = np.empty(at.shape, dtype=np.intp)
    ref[:, 0], ref[:, -1] = ref_low, ref_high
    inner = at[:, 1:-1]
    cut_values = current_sorted[inner]
    ref[:, 1:-1] = np.searchsorted(reference_sorted, cut_values.ravel(), "left"
                                   ).reshape(cut_values.shape)
    ref_f, cur_f = ref / n, at / m
    exact = (ref_f[:, 1:-1] - cur_f[:, 1:-1])[current_sorted[inner - 1] != cut_values]
    if exact.size:
        seen = max(seen, float(exact.max()), -float(exact.min()))
    bound = np.maximum(ref_f[:, 1:] - cur_f[:, :-1], cur_f[:, 1:] - ref_f[:, :-1])
    keep = (bound > seen) & (at[:, 1:] > at[:, :-1])
    return at[:, :-1][keep], at[:, 1:][keep], ref[:, :-1][keep], ref[:, 1:][keep], seen


def _ks_block_extremes(reference_sorted: NDArray[np.float64],
                       current_sorted: NDArray[np.float64], start: NDArray[np.intp],
                       stop: NDArray[np.intp]) -> float:
    """The largest ``|F_ref - F_cur|`` at the pooled values that blocks of window
    positions ``[start, stop)`` cover, evaluated at each position from ``start`` to
    ``stop`` inclusive.

    Between two distinct window values the window's ECDF is flat, so its difference to the
    reference's is extreme just below the next window value or at the window value itself:
    the first is read at each position that starts a run of equal values (``#ref < v``,
    one binary search), the second at each that ends one (``#ref <= v``: the same search,
    and a second one only where the reference holds ``v`` too). Evaluating the position
    ``stop`` as well covers the values just below the next block's first.
    """
    n, m = reference_sorted.size, current_sorted.size
    stop = np.minimum(stop, m - 1)
    lengths = stop - start + 1
    offsets = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
    index = np.arange(offsets.size) + offsets
    values = current_sorted[index]
    first = current_sorted[np.maximum(index - 1, 0)] != values
    first[index == 0] = True
    last = current_sorted[np.minimum(index + 1, m - 1)] != values
    last[index == m - 1] = True
    ref_below = np.searchsorted(reference_sorted, values, "left")
    below = ref_below[first] / n - index[first] / m
    ref_upto = ref_below[last]
    tied = reference_sorted[np.minimum(ref_upto, n - 1)] == values[last]
    if tied.any():
        ref_upto[tied] = np.searchsorted(reference_sorted, values[last][tied], "right")
    at = (index[last] + 1) / m - ref_upto / n
    return max(_largest_size(below), _largest_size(at))


def _largest_size(x: NDArray[np.float64]) -> float:
    """The largest absolute value of an array (0 when empty)."""
    return max(float(x.max()), -float(x.min())) if x.size else 0.0


def ks_asymptotic_pvalue(d: float, n: int, m: int) -> float:
    """scipy's asymptotic two-sided p-value, ``kstwo.sf(D, N)`` with ``N = round(n*m/(n+m))``.

    ``kstwo.sf`` picks one of several formulas by ``N`` and ``N*D^2`` (scipy's
    ``_kolmogn``); the two that large windows reach are computed here without scipy's
    per-call overhead. Where it takes twice the one-sided ``smirnov(N, D)`` (``N*D^2 >=
    2.2``, the small p-values where drift is decided) and ``N`` is at most
    ``SMIRNOV_EXACT_MAX_N``, scipy adds up about ``N`` terms of the exact series (60 ms at
    N = 50,000, 1.4 s at 10^6, per column); ``smirnov_sf`` gives the same value in well
    under a millisecond. Where ``N*D^2 < 2.2`` and ``N`` is large (p-values from about
    0.003 up, undrifted columns) it is ``1 - pelz_good_cdf(N, D)``, the expansion scipy
    uses there, in plain floats. Elsewhere (small ``N``, extreme ``D``) scipy's own function
    is called.
    """
    big, small = (float(n), float(m)) if n >= m else (float(m), float(n))
    en = float(np.round(big * small / (big + small)))
    t = en * d
    if en > 140 and 1.0 < t < en - 1.0:
        squared = t * d
        if squared >= 370.0 and d < 0.5:
            return 0.0  # scipy's cut-off: below the smallest double
        if squared >= 2.2:
            if en <= SMIRNOV_EXACT_MAX_N:
                return min(max(2.0 * smirnov_sf(int(en), d), 0.0), 1.0)
        elif en > 100_000 or en * d**1.5 > 1.4:
            return min(max(1.0 - pelz_good_cdf(int(en), d), 0.0), 1.0)
    return float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))


#: Series terms whose exponent is below this are dropped: e**-42 is under 1e-18 of the
#: leading term, far inside the 1e-9 the tests hold p-values to.
_SERIES_CUTOFF = 42.0


def pelz_good_cdf(n: int, x: float) -> float:
    """``P(D_n <= x)`` for the two-sided one-sample KS statistic by Pelz and Good's (1976)
    expansion in powers of ``1/sqrt(n)``, as Simard and L'Ecuyer (2011) give it:
    ``K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5`` with ``z = sqrt(n) x``.

    Each ``K`` is a theta-type series: over ``j = k - 1/2`` with weights
    ``exp(-pi^2 j^2 / (2 z^2))`` and, for ``K2`` and ``K3``, a second one over whole ``k``
    with ``exp(-pi^2 k^2 / (2 z^2))``. Both converge within a few terms for the ``z`` that
    reach here (``z < 1.5``). Plain floats: this runs once per column, where numpy's
    scalar calls would cost more than the arithmetic. This is the form scipy's
    ``kstwo.sf`` evaluates in the same region; the tests hold the two to 1e-10.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = math.sqrt(n) * x
    pi2 = math.pi * math.pi
    a = pi2 / (2.0 * z * z)  # the exponent's scale: exp(-a j^2), exp(-a k^2)
    if a * 0.25 > 708.0:  # even the first term underflows: the cdf is 0
        return 0.0
    z2 = z * z
    z4, z6, z8 = z2 * z2, z2 * z2 * z2, z2 * z2 * z2 * z2
    half_sums = [0.0, 0.0, 0.0, 0.0]  # the j = k - 1/2 series of K0 .. K3
    j = 0.5
    while a * j * j <= _SERIES_CUTOFF:
        w = math.exp(-a * j * j)
        u = pi2 * j * j  # pi^2 j^2
        half_sums[0] += w
        half_sums[1] += (u - z2) * w
        half_sums[2] += (6 * z6 + 2 * z4 + (2 * z4 - 5 * z2) * u + (1 - 2 * z2) * u * u) * w
        half_sums[3] += (-30 * z6 - 90 * z8 + (135 * z4 - 96 * z6) * u
                         + (212 * z4 - 60 * z2) * u * u + (5 - 30 * z2) * u * u * u) * w
        j += 1.0
    whole2 = whole3 = 0.0  # the whole-k series of K2 and K3
    k = 1.0
    while a * k * k <= _SERIES_CUTOFF:
        w = pi2 * k * k * math.exp(-a * k * k)  # pi^2 k^2 exp(-a k^2)
        whole2 += w
        whole3 += (3 * z2 - pi2 * k * k) * w
        k += 1.0
    c = math.sqrt(math.pi / 2.0)
    k0 = 2 * c / z * half_sums[0]
    k1 = c / (3 * z4) * half_sums[1]
    k2 = c / (36 * z4 * z2 * z) * half_sums[2] - c / (18 * z2 * z) * whole2
    k3 = c / (3240 * z8 * z2) * half_sums[3] + c / (108 * z6) * whole3
    root = math.sqrt(float(n))
    return k0 + k1 / root + k2 / n + k3 / (n * root)


def smirnov_sf(n: int, x: float) -> float:
    """``P(D+_n >= x)`` for the one-sided KS statistic: ``scipy.special.smirnov(n, x)``.

    The exact value is the Birnbaum-Tingey series ``x * sum_j C(n, j) (1 - x - j/n)^(n-j)
    (x + j/n)^(j-1)`` over ``j = 0 .. floor(n (1 - x))``. Its terms are the values at the
    integers of a smooth function of ``j`` that rises from and falls back to nothing within
    the range, and for such a function the sum over the integers equals ``h`` times the
    sum over every ``h``-th integer to within rounding (the trapezoid rule is spectrally
    accurate there). ``SMIRNOV_POINTS`` terms, each computed in log space with ``gammaln``,
    agree with scipy's term-by-term sum to about 1e-10 relative (tests hold it to 1e-9).
    """
    last = math.floor(n * (1.0 - x))
    # A zero term, (1 - x - j/n)^(n - j) with a zero base: tested on the very argument that
    # log1p receives below, so that a base which is positive only by rounding (x * n near
    # an integer) is dropped too instead of reaching log1p(-1).
    if last >= 0 and -x - last / n <= -1.0:
        last -= 1
    if last < 0:
        return 0.0
    step = max(1, last // SMIRNOV_POINTS)
    j = np.arange(0, last + 1, step, dtype=np.float64)
    logs = (special.gammaln(n + 1.0) - special.gammaln(j + 1.0) - special.gammaln(n - j + 1.0)
            + (n - j) * np.log1p(-x - j / n) + (j - 1.0) * np.log(x + j / n))
    top = float(logs.max())
    return float(x * step * math.exp(top) * np.exp(logs - top).sum())


def ks_exact(d: float, n: int, m: int) -> tuple[float, float] | None:
    """``ks_2samp(method="exact")``'s two-sided (statistic, p-value) for a KS distance
    ``d`` between samples of ``n`` and ``m`` values, from the sizes alone; None when the
    installed scipy lacks the helper (or its signature changed).

    Like ``ks_2samp`` the statistic is ``d`` rounded to a multiple of ``1/lcm(n, m)``, and
    where the exact computation fails (overflow for some unequal sizes) the p-value is the
    asymptotic one of that rounded statistic.
    """
    if _KS_EXACT is None:
        return None
    try:
        ok, rounded, p = _KS_EXACT(n, m, math.gcd(n, m), d, "two-sided")
    except TypeError:
        return None
    if not ok:
        return float(rounded), ks_asymptotic_pvalue(float(rounded), n, m)
    return float(rounded), float(np.clip(p, 0.0, 1.0))


@register
class KolmogorovSmirnov(NumericMethod):
    """Two-sample Kolmogorov-Smirnov test (two-sided).

    Statistic: the largest gap between the two empirical CDFs; drift when the p-value is
    below 0.05, the conventional 5% significance level (also Evidently's default for its
    small-data numeric test). The p-value follows ``scipy.stats.ks_2samp(method="auto")``:
    exact when neither side exceeds 10,000 values (scipy's exact null distribution,
    ``ks_exact``), otherwise Smirnov's asymptotic distribution (``ks_asymptotic_pvalue``,
    scipy's formulas without its per-call cost). The statistic is ``ks_statistic`` on the
    sorted reference and its rank grid either way.
    """

    name = "ks"
    kind = "numeric"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("Two-sample Kolmogorov-Smirnov test: largest gap between the empirical CDFs; "
               "drift when p < 0.05 (conventional 5% significance level).")

    def fit(self, reference: NumericProfile) -> NumericProfile:
        """The profile with its rank grid, which every score searches in the window."""
        if reference.n == 0 or reference.grid is not None:
            return reference
        return dataclasses.replace(reference, grid=rank_grid(reference.sorted_values))

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        n, m = reference.n, int(current.size)
        current_sorted = current
        d = ks_statistic(reference.sorted_values, current_sorted, reference.grid)
        if max(n, m) > KS_EXACT_MAX_N:
            return d, ks_asymptotic_pvalue(d, n, m)
        exact = ks_exact(d, n, m)
        if exact is not None:
            return exact
        with warnings.catch_warnings():
            # scipy warns when the exact path fails and it falls back to asymptotics.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(reference.sorted_values, current_sorted)
        return float(res.statistic), float(res.pvalue)


def cvm_statistic(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
                  ) -> float:
    """Two-sample Cramer-von Mises T in its ECDF form (Anderson 1962):
    ``n*m/N^2 * sum over the N pooled values of (F_ref - F_cur)^2``.

    Without ties it equals scipy's rank formula (to rounding); with ties it evaluates both
    right-continuous ECDFs at each tied value, so identical samples give T = 0.
    """
    n = reference_sorted.size
    m = current_sorted.size
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    ends = np.flatnonzero(run_ends(merged))
    cur_count = np.cumsum(is_cur)[ends]
    gap = (ends + 1 - cur_count) / n - cur_count / m
    run_length = np.diff(ends, prepend=-1)
    total = n + m
    return n * m / (total * total) * float(np.dot(run_length, gap * gap))


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
    n, m = reference_sorted.size, current_sorted.size
    below = np.searchsorted(reference_sorted, current_sorted).astype(np.float64)
    occurs = np.diff(below, prepend=0.0, append=float(n))
    j = np.arange(m + 1, dtype=np.float64)
    return (n * float(np.einsum("i,i,i->", occurs, j, j))
            + m * float(np.einsum("i,i->", below, below)))


def cvm_from_rank_statistic(u: float, n: int, m: int) -> float:
    """T from U (Anderson 1962, eq. 9): ``U / (n m N) - (4 n m - 1) / (6 N)``."""
    prod, total = n * m, n + m
    return u / (prod * total) - (4 * prod - 1) / (6 * total)


def cvm_limit_cdf(x: float, terms: int = 64) -> float:
    """CDF of the limiting Cramer-von Mises distribution (Anderson and Darling 1952; the
    series in Csorgo and Faraway 1996, eq. 1.2), summed to convergence."""
    k = np.arange(terms)
    y = 4.0 * k + 1.0
    q = y * y / (16.0 * x)
    coef = np.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1.0))
    # exp(-q) * K_1/4(q) written with the scaled Bessel function to avoid underflow noise.
    series = coef * np.sqrt(y) * special.kve(0.25, q) * np.exp(-2.0 * q)
    return float(np.sum(series)) / (math.pi * math.sqrt(math.pi * x))


def _limit_cdf(x: float) -> float:
    """The limiting Cramer-von Mises CDF as scipy evaluates it (its series stops once a
    term is below 1e-7; within 3e-10 of ``cvm_limit_cdf``, which is the fallback)."""
    if _CVM_LIMIT_CDF is not None:
        try:
            return float(_CVM_LIMIT_CDF(np.asarray(x, dtype=np.float64)))
        except TypeError:
            pass
    return cvm_limit_cdf(x)


def cvm_asymptotic_pvalue(t: float, n: int, m: int) -> float:
    """p-value of T from its mean and variance under the null (Anderson 1962, eqs. 11, 14)
    and the limiting distribution, as scipy's asymptotic method does."""
    total, prod = n + m, n * m
    mean = (1.0 + 1.0 / total) / 6.0
    var = (total + 1.0) * (4.0 * prod * total - 3.0 * (n * n + m * m) - 2.0 * prod)
    var /= 45.0 * total * total * 4.0 * prod
    standard = 1.0 / 6.0 + (t - mean) / math.sqrt(45.0 * var)
    if standard < 0.003:  # the limiting CDF is below 1e-17 there
        return 1.0
    return max(1.0 - _limit_cdf(standard), 0.0)


def cvm_exact_pvalue(u: float, n: int, m: int) -> float | None:
    """scipy's exact p-value of U for samples of ``n`` and ``m`` values (what
    ``cramervonmises_2samp`` uses when both have at most 20); None when the installed
    scipy lacks the helper (or its signature changed)."""
    if _CVM_EXACT is None:
        return None
    try:
        return float(_CVM_EXACT(np.float64(u), n, m))
    except TypeError:
        return None


#: ``cramervonmises_2samp(method="auto")`` is exact up to this many values on both sides.
CVM_EXACT_MAX_N = 20


@register
class CramerVonMises(NumericMethod):
    """Two-sample Cramer-von Mises test: the integrated squared gap between the ECDFs.

    Without ties this is ``scipy.stats.cramervonmises_2samp`` (p-value exact when both
    sides have at most 20 values, asymptotic otherwise), its rank statistic counted from
    binary searches in the sorted reference (``cvm_rank_statistic``). With ties scipy's
    midrank formula is wrong when the sample sizes differ (measured: every undrifted
    column rounded to one decimal flagged at 5000 vs 500 rows), so tied samples use the
    ECDF form of the same statistic and the asymptotic p-value, which is conservative for
    discrete data; the message says so. Drift when p < 0.05, the conventional
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
        if reference.n < 2 or current.size < 2:
            return math.nan, math.nan
        current_sorted = current
        n, m = reference.n, int(current_sorted.size)
        if has_ties(reference.sorted_values, reference.n_unique, current_sorted):
            t = cvm_statistic(reference.sorted_values, current_sorted)
            return t, cvm_asymptotic_pvalue(t, n, m)
        u = cvm_rank_statistic(reference.sorted_values, current_sorted)
        t = cvm_from_rank_statistic(u, n, m)
        if max(n, m) > CVM_EXACT_MAX_N:
            return t, cvm_asymptotic_pvalue(t, n, m)
        p = cvm_exact_pvalue(u, n, m)
        if p is not None:
            return t, p
        res = stats.cramervonmises_2samp(reference.sorted_values, current_sorted)
        return float(res.statistic), float(res.pvalue)

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        if reference.n < 2 or current.size < 2:
            return "not scored: cvm needs at least two values on each side"
        if has_ties(reference.sorted_values, reference.n_unique, current):
            return ("tied values: statistic from the ECDFs, asymptotic p-value "
                    "(conservative for discrete data)")
        return None


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
    n, m = reference_sorted.size, current_sorted.size
    total = n + m
    merged, is_cur = merge_sorted(reference_sorted, current_sorted)
    ends = np.flatnonzero(run_ends(merged))
    upto = (ends + 1).astype(np.float64)
    copies = np.diff(upto, prepend=0.0)
    cur_upto = np.cumsum(is_cur)[ends].astype(np.float64)
    cur_copies = np.diff(cur_upto, prepend=0.0)
    mid = upto - copies / 2.0
    weight = copies / (mid * (total - mid) - total * copies / 4.0)
    sum_over_samples = 0.0
    for size, sample_upto, sample_copies in ((n, upto - cur_upto, copies - cur_copies),
                                             (m, cur_upto, cur_copies)):
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
    h = float(inner[-1]) + 1.0
    g = float(np.sum(inner / np.arange(2, total, dtype=np.float64)))
    return h, g


def anderson_standardised(a2akn: float, n: int, m: int) -> float:
    """``(A2akN - (k - 1)) / sigma_N`` for k = 2 samples of ``n`` and ``m`` values, with
    the exact null variance of Scholz and Stephens (1987, eq. 4); ``n + m >= 4``."""
    k, total = 2, n + m
    h, g = _anderson_harmonic_sums(total)
    inv = 1.0 / n + 1.0 / m
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * inv
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * inv - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * inv + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    variance = ((a * total**3 + b * total**2 + c * total + d)
                / ((total - 1.0) * (total - 2.0) * (total - 3.0)))
    return (a2akn - (k - 1)) / math.sqrt(variance)


def anderson_pvalue(a2: float) -> float:
    """scipy's p-value for the standardised two-sample statistic: interpolated from the
    table's critical values (``_ANDERSON_LOG_LEVEL``) and held to [0.001, 0.25] outside
    them, where the table says nothing more."""
    if a2 < ANDERSON_CRITICAL[0]:
        return ANDERSON_P_CAP
    if a2 > ANDERSON_CRITICAL[-1]:
        return ANDERSON_P_FLOOR
    return math.exp(float(np.polyval(_ANDERSON_LOG_LEVEL, a2)))


@register
class AndersonDarling(NumericMethod):
    """k-sample Anderson-Darling test (Scholz and Stephens 1987) on the two samples.

    ``scipy.stats.anderson_ksamp`` with the midrank variant (its historical default, for
    data with ties), computed from the sorted reference and window (``anderson_midrank``,
    ``anderson_standardised``). Like the CDF tests above it weighs the tails more than KS
    does. Its p-value is interpolated from a table and clipped to [0.001, 0.25]
    (``anderson_pvalue``; scipy warns, we say so in the result's message instead). Drift
    when p < 0.05, the conventional significance level, which lies well inside the table.
    Needs at least four values in all and two distinct values.
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
        a2 = anderson_standardised(a2akn, reference.n, int(current.size))
        return a2, anderson_pvalue(a2)

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        problem = _anderson_problem(reference, current)
        if problem is not None:
            return problem
        if p_value == ANDERSON_P_CAP:
            return "p-value capped at 0.25 by scipy's table: the true value is larger"
        if p_value == ANDERSON_P_FLOOR:
            return "p-value floored at 0.001 by scipy's table: the true value is smaller"
        return None


def _anderson_problem(reference: NumericProfile, current: NDArray[np.float64]
                      ) -> str | None:
    """Why the Anderson-Darling statistic is undefined for these samples, if it is."""
    if reference.n + current.size < 4:
        return "not scored: anderson needs at least four values in all"
    first = reference.sorted_values[0]
    if reference.sorted_values[-1] == first and bool(np.all(current == first)):
        return "not scored: all values are equal on both sides (no drift)"
    return None
