"""The two-sample Kolmogorov-Smirnov test: its statistic read off the reference's rank
grid, and its p-value (scipy's exact null distribution, Smirnov's series, Pelz and Good's
expansion).

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``: the method compares the reference's sorted values with the current window
and returns the statistic and its p-value. ``scipy.stats.ks_2samp`` is the reference for
both numbers and the tests under ``tests/unit/stats`` hold us to 1e-9. It sorts both
samples on every call, so it is not called on a score: the statistic comes from the
profile's sorted reference and rank grid and the window, sorted once; the exact null
distribution, which depends only on the statistic and the two sizes, from scipy's private
helper where this scipy has it (``scipy_private``), the public function otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelmon.stats.drift.base import (
    Deferred,
    DriftResult,
    NumericMethod,
    register,
    with_p_value,
)
from modelmon.stats.drift.scipy_private import lazy_helpers
from modelmon.stats.drift.ties import ks_tied_pvalue, ks_tied_pvalues, tied_runs
from modelmon.stats.profile import NumericProfile, RankGrid, rank_grid

#: Above this many values on either side scipy's ``ks_2samp(method="auto")`` switches from
#: the exact null distribution to the asymptotic one; we follow the same switch.
KS_EXACT_MAX_N = 10_000

#: ``scipy.special.smirnov(n, x)`` sums the exact one-sided series up to this n (and uses an
#: asymptotic form above); ``smirnov_sf`` gives the same sum without adding up n terms.
SMIRNOV_EXACT_MAX_N = 1_000_000

#: Terms of the series that ``smirnov_sf`` evaluates, whatever n is.
SMIRNOV_POINTS = 256

#: Where the continuous asymptotic p-value is below this, tied data keep it: the tied one
#: is smaller still (the distance is a maximum over fewer points), and the walk that
#: computes it would cover a band as wide as the samples.
KS_TIED_FAR_TAIL = 1e-10

#: The caveat of a score on tied data (``ties.tied_runs``).
TIED_CAVEAT = "tied values: permutation p-value given the pooled values"

#: ``_KS_EXACT``: scipy's exact two-sample KS null distribution from (n1, n2, gcd, D,
#: alternative), as ``ks_2samp`` calls it: returns (success, D rounded to a multiple of
#: 1/lcm, p-value). Looked up on first use (``__getattr__``): scipy.stats takes longer to
#: import than a small check takes to run, and most checks never need it.
_LAZY = {"_KS_EXACT": ("scipy.stats._stats_py", "_attempt_exact_2kssamp")}

__getattr__, _lazy = lazy_helpers(globals(), _LAZY)


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
    n_cur = current_sorted.size
    if grid is None:
        grid = rank_grid(reference_sorted)
    values = grid.values
    # Window counts below and up to each grid value; exact differences there.
    cur_below = np.searchsorted(current_sorted, values, "left")
    equal = current_sorted[np.minimum(cur_below, n_cur - 1)] == values
    cur_upto = cur_below
    if equal.any():
        # A run of a grid value that reaches the next grid value's position ends there
        # (common when the window has few distinct values); the others are searched.
        cur_upto = cur_below.copy()
        following = np.append(cur_below[1:], n_cur)
        reaches = equal & (current_sorted[np.maximum(following - 1, 0)] == values)
        cur_upto[reaches] = following[reaches]
        rest = equal & ~reaches
        if rest.any():
            cur_upto[rest] = np.searchsorted(current_sorted, values[rest], "right")
    below_ref, upto_ref = grid.below_share, grid.upto_share
    below_cur = cur_below / n_cur
    upto_cur = below_cur if cur_upto is cur_below else cur_upto / n_cur
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
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    cuts = np.arange(KS_SPLIT + 1)
    cut_at = start[:, None] + ((stop - start)[:, None] * cuts) // KS_SPLIT
    ref = np.empty(cut_at.shape, dtype=np.intp)
    ref[:, 0], ref[:, -1] = ref_low, ref_high
    inner = cut_at[:, 1:-1]
    cut_values = current_sorted[inner]
    ref[:, 1:-1] = np.searchsorted(reference_sorted, cut_values.ravel(), "left"
                                   ).reshape(cut_values.shape)
    ref_f, cur_f = ref / n_ref, cut_at / n_cur
    exact = (ref_f[:, 1:-1] - cur_f[:, 1:-1])[current_sorted[inner - 1] != cut_values]
    if exact.size:
        seen = max(seen, float(exact.max()), -float(exact.min()))
    bound = np.maximum(ref_f[:, 1:] - cur_f[:, :-1], cur_f[:, 1:] - ref_f[:, :-1])
    keep = (bound > seen) & (cut_at[:, 1:] > cut_at[:, :-1])
    return cut_at[:, :-1][keep], cut_at[:, 1:][keep], ref[:, :-1][keep], ref[:, 1:][keep], seen


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
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    stop = np.minimum(stop, n_cur - 1)
    lengths = stop - start + 1
    offsets = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
    index = np.arange(offsets.size) + offsets
    values = current_sorted[index]
    first = current_sorted[np.maximum(index - 1, 0)] != values
    first[index == 0] = True
    last = current_sorted[np.minimum(index + 1, n_cur - 1)] != values
    last[index == n_cur - 1] = True
    ref_below = np.searchsorted(reference_sorted, values, "left")
    below = ref_below[first] / n_ref - index[first] / n_cur
    ref_upto = ref_below[last]
    tied = reference_sorted[np.minimum(ref_upto, n_ref - 1)] == values[last]
    if tied.any():
        ref_upto[tied] = np.searchsorted(reference_sorted, values[last][tied], "right")
    at_value = (index[last] + 1) / n_cur - ref_upto / n_ref
    return max(_largest_size(below), _largest_size(at_value))


def _largest_size(differences: NDArray[np.float64]) -> float:
    """The largest absolute value of an array (0 when empty)."""
    return max(float(differences.max()), -float(differences.min())) if differences.size else 0.0


def ks_asymptotic_pvalue(distance: float, n_ref: int, n_cur: int) -> float:
    """scipy's asymptotic two-sided p-value, ``kstwo.sf(D, N)`` with ``N = round(n*m/(n+m))``
    (``D`` the ``distance``, ``n`` and ``m`` the sizes ``n_ref`` and ``n_cur``).

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
    big, small = (float(n_ref), float(n_cur)) if n_ref >= n_cur else (float(n_cur), float(n_ref))
    effective_n = float(np.round(big * small / (big + small)))
    en_times_d = effective_n * distance
    if effective_n > 140 and 1.0 < en_times_d < effective_n - 1.0:
        squared = en_times_d * distance
        if squared >= 370.0 and distance < 0.5:
            return 0.0  # scipy's cut-off: below the smallest double
        if squared >= 2.2:
            if effective_n <= SMIRNOV_EXACT_MAX_N:
                return min(max(2.0 * smirnov_sf(int(effective_n), distance), 0.0), 1.0)
        elif effective_n > 100_000 or effective_n * distance**1.5 > 1.4:
            return min(max(1.0 - pelz_good_cdf(int(effective_n), distance), 0.0), 1.0)
    from scipy import stats

    return float(np.clip(stats.kstwo.sf(distance, effective_n), 0.0, 1.0))


#: Series terms whose exponent is below this are dropped: e**-42 is under 1e-18 of the
#: leading term, far inside the 1e-9 the tests hold p-values to.
_SERIES_CUTOFF = 42.0


def pelz_good_cdf(size: int, distance: float) -> float:
    """``P(D_n <= x)`` for the two-sided one-sample KS statistic by Pelz and Good's (1976)
    expansion in powers of ``1/sqrt(n)``, as Simard and L'Ecuyer (2011) give it:
    ``K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5`` with ``z = sqrt(n) x`` (``n`` the
    ``size``, ``x`` the ``distance``; ``z_val``, ``z_sq`` and ``z_p4`` … in the code).

    Each ``K`` is a theta-type series: over ``j = k - 1/2`` with weights
    ``exp(-pi^2 j^2 / (2 z^2))`` and, for ``K2`` and ``K3``, a second one over whole ``k``
    with ``exp(-pi^2 k^2 / (2 z^2))``. Both converge within a few terms for the ``z`` that
    reach here (``z < 1.5``). Plain floats: this runs once per column, where numpy's
    scalar calls would cost more than the arithmetic. This is the form scipy's
    ``kstwo.sf`` evaluates in the same region; the tests hold the two to 1e-10.
    """
    if distance <= 0.0:
        return 0.0
    if distance >= 1.0:
        return 1.0
    z_val = math.sqrt(size) * distance
    pi2 = math.pi * math.pi
    scale = pi2 / (2.0 * z_val * z_val)  # the exponent's scale: exp(-a j^2), exp(-a k^2)
    if scale * 0.25 > 708.0:  # even the first term underflows: the cdf is 0
        return 0.0
    z_sq = z_val * z_val
    z_p4, z_p6, z_p8 = z_sq * z_sq, z_sq * z_sq * z_sq, z_sq * z_sq * z_sq * z_sq
    half_sums = [0.0, 0.0, 0.0, 0.0]  # the j = k - 1/2 series of K0 .. K3
    half = 0.5  # j
    while scale * half * half <= _SERIES_CUTOFF:
        weight = math.exp(-scale * half * half)
        pi_j_sq = pi2 * half * half  # pi^2 j^2
        half_sums[0] += weight
        half_sums[1] += (pi_j_sq - z_sq) * weight
        half_sums[2] += (6 * z_p6 + 2 * z_p4 + (2 * z_p4 - 5 * z_sq) * pi_j_sq
                         + (1 - 2 * z_sq) * pi_j_sq * pi_j_sq) * weight
        half_sums[3] += (-30 * z_p6 - 90 * z_p8 + (135 * z_p4 - 96 * z_p6) * pi_j_sq
                         + (212 * z_p4 - 60 * z_sq) * pi_j_sq * pi_j_sq
                         + (5 - 30 * z_sq) * pi_j_sq * pi_j_sq * pi_j_sq) * weight
        half += 1.0
    whole2 = whole3 = 0.0  # the whole-k series of K2 and K3
    whole = 1.0  # k
    while scale * whole * whole <= _SERIES_CUTOFF:
        weight = pi2 * whole * whole * math.exp(-scale * whole * whole)  # pi^2 k^2 exp(-a k^2)
        whole2 += weight
        whole3 += (3 * z_sq - pi2 * whole * whole) * weight
        whole += 1.0
    root_half_pi = math.sqrt(math.pi / 2.0)
    term0 = 2 * root_half_pi / z_val * half_sums[0]
    term1 = root_half_pi / (3 * z_p4) * half_sums[1]
    term2 = (root_half_pi / (36 * z_p4 * z_sq * z_val) * half_sums[2]
             - root_half_pi / (18 * z_sq * z_val) * whole2)
    term3 = (root_half_pi / (3240 * z_p8 * z_sq) * half_sums[3]
             + root_half_pi / (108 * z_p6) * whole3)
    root = math.sqrt(float(size))
    return term0 + term1 / root + term2 / size + term3 / (size * root)


def smirnov_sf(size: int, distance: float) -> float:
    """``P(D+_n >= x)`` for the one-sided KS statistic: ``scipy.special.smirnov(n, x)``
    (``n`` the ``size``, ``x`` the ``distance``, ``j`` the ``term``).

    The exact value is the Birnbaum-Tingey series ``x * sum_j C(n, j) (1 - x - j/n)^(n-j)
    (x + j/n)^(j-1)`` over ``j = 0 .. floor(n (1 - x))``. Its terms are the values at the
    integers of a smooth function of ``j`` that rises from and falls back to nothing within
    the range, and for such a function the sum over the integers equals ``h`` times the
    sum over every ``h``-th integer to within rounding (the trapezoid rule is spectrally
    accurate there). ``SMIRNOV_POINTS`` terms, each computed in log space with ``gammaln``,
    agree with scipy's term-by-term sum to about 1e-10 relative (tests hold it to 1e-9).
    """
    last = math.floor(size * (1.0 - distance))
    # A zero term, (1 - x - j/n)^(n - j) with a zero base: tested on the very argument that
    # log1p receives below, so that a base which is positive only by rounding (x * n near
    # an integer) is dropped too instead of reaching log1p(-1).
    if last >= 0 and -distance - last / size <= -1.0:
        last -= 1
    if last < 0:
        return 0.0
    step = max(1, last // SMIRNOV_POINTS)
    term = np.arange(0, last + 1, step, dtype=np.float64)
    logs = (special.gammaln(size + 1.0) - special.gammaln(term + 1.0)
            - special.gammaln(size - term + 1.0)
            + (size - term) * np.log1p(-distance - term / size)
            + (term - 1.0) * np.log(distance + term / size))
    top = float(logs.max())
    return float(distance * step * math.exp(top) * np.exp(logs - top).sum())


def ks_exact(distance: float, n_ref: int, n_cur: int) -> tuple[float, float] | None:
    """``ks_2samp(method="exact")``'s two-sided (statistic, p-value) for a KS distance
    ``distance`` between samples of ``n_ref`` and ``n_cur`` values, from the sizes alone;
    None when the installed scipy lacks the helper (or its signature changed).

    Like ``ks_2samp`` the statistic is ``distance`` rounded to a multiple of
    ``1/lcm(n_ref, n_cur)``, and where the exact computation fails (overflow for some
    unequal sizes) the p-value is the asymptotic one of that rounded statistic.
    """
    exact = _lazy("_KS_EXACT")
    if exact is None:
        return None
    try:
        computed, rounded, p_value = exact(n_ref, n_cur, math.gcd(n_ref, n_cur), distance,
                                               "two-sided")
    except TypeError:
        return None
    if not computed:
        return float(rounded), ks_asymptotic_pvalue(float(rounded), n_ref, n_cur)
    return float(rounded), float(np.clip(p_value, 0.0, 1.0))


class KsDistanceEffect(NumericMethod):
    """Base of the numeric tests whose effect size is the KS distance (ks, cvm, anderson):
    the fitted profile keeps the rank grid that distance searches, made once at fit."""

    def fit(self, reference: NumericProfile) -> NumericProfile:
        """The profile with its rank grid, which every score searches in the window."""
        if reference.n_present == 0 or reference.grid is not None:
            return reference
        return dataclasses.replace(reference, grid=rank_grid(reference.sorted_values))

    def effect_size(self, reference: NumericProfile, current: NDArray[np.float64],
                    statistic: float) -> float:
        """The KS distance between the two samples, the numeric tests' common scale."""
        return ks_statistic(reference.sorted_values, current, reference.grid)


@register
class KolmogorovSmirnov(KsDistanceEffect):
    """Two-sample Kolmogorov-Smirnov test (two-sided).

    Statistic: the largest gap between the two empirical CDFs; drift when the p-value is
    below 0.05, the conventional 5% significance level (also Evidently's default for its
    small-data numeric test). The p-value follows ``scipy.stats.ks_2samp(method="auto")``:
    exact when neither side exceeds 10,000 values (scipy's exact null distribution,
    ``ks_exact``), otherwise Smirnov's asymptotic distribution (``ks_asymptotic_pvalue``,
    scipy's formulas without its per-call cost). On tied data (counts, integers, rounded
    values: ``ties.tied_runs``) those p-values are conservative (measured: 0.01-0.03
    flagged at alpha = 0.05), so the p-value is the permutation one given the pooled
    values (``ties.ks_tied_pvalue``), which holds alpha. The statistic is ``ks_statistic``
    on the sorted reference and its rank grid either way.
    """

    name = "ks"
    kind = "numeric"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("Two-sample Kolmogorov-Smirnov test: largest gap between the empirical CDFs; "
               "drift when p < 0.05 (conventional 5% significance level).")

    def effect_size(self, reference: NumericProfile, current: NDArray[np.float64],
                    statistic: float) -> float:
        """The KS distance is the statistic itself."""
        return statistic

    def caveat(self, reference: NumericProfile, current: NDArray[np.float64],
               statistic: float, p_value: float | None) -> str | None:
        if reference.n_present and current.size and tied_runs(reference, current) is not None:
            return TIED_CAVEAT
        return None

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        distance = ks_statistic(reference.sorted_values, current, reference.grid)
        tied = _tied_walk(reference, current, distance)
        if tied is not None:
            return distance, tied if isinstance(tied, float) else ks_tied_pvalue(*tied)
        return self._untied(reference, current, distance)

    def score_or_defer(self, reference: NumericProfile, current: NDArray[np.float64], *,
                       prepared: bool = False) -> DriftResult | Deferred:
        """``score``, deferring a tied p-value (``ks_tied_pvalue``) to ``settle``, which
        walks the check's tied columns together (``ties.ks_tied_pvalues``)."""
        if not prepared:
            current = self.prepare(current)
        if reference.n_present == 0 or current.size == 0:
            return self.score(reference, current, prepared=True)
        distance = ks_statistic(reference.sorted_values, current, reference.grid)
        tied = _tied_walk(reference, current, distance)  # the caveat, known here
        if tied is None:
            return self.result_with(reference, current,
                                    *self._untied(reference, current, distance), None)
        if isinstance(tied, float):
            return self.result_with(reference, current, distance, tied, TIED_CAVEAT)
        return Deferred(self, self.result_with(reference, current, distance, None, TIED_CAVEAT),
                        tied)

    def settle(self, deferred: Sequence[Deferred]) -> list[DriftResult]:
        tasks: list[TiedTask] = [item.task for item in deferred]
        p_values = ks_tied_pvalues(*zip(*tasks, strict=True))
        return [with_p_value(item.result, p_value)
                for item, p_value in zip(deferred, p_values, strict=True)]

    def _untied(self, reference: NumericProfile, current_sorted: NDArray[np.float64],
                distance: float) -> tuple[float, float | None]:
        n_ref, n_cur = reference.n_present, int(current_sorted.size)
        if max(n_ref, n_cur) > KS_EXACT_MAX_N:
            return distance, ks_asymptotic_pvalue(distance, n_ref, n_cur)
        exact = ks_exact(distance, n_ref, n_cur)
        if exact is not None:
            return exact
        from scipy import stats

        with warnings.catch_warnings():
            # scipy warns when the exact path fails and it falls back to asymptotics.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(reference.sorted_values, current_sorted)
        return float(res.statistic), float(res.pvalue)


#: ``ks_tied_pvalue``'s arguments: the distance, the sizes a side and the pooled runs.
TiedTask = tuple[float, int, int, NDArray[np.int64]]


def _tied_walk(reference: NumericProfile, current_sorted: NDArray[np.float64],
               distance: float) -> TiedTask | float | None:
    """How a column's KS p-value is tied: None when the column is not (``tied_runs``);
    in the far tail, Kolmogorov's limit of the untied p-value (a bound on the tied one,
    below ``KS_TIED_FAR_TAIL``); else the arguments of ``ks_tied_pvalue``."""
    runs = tied_runs(reference, current_sorted)
    if runs is None:
        return None
    n_ref, n_cur = reference.n_present, int(current_sorted.size)
    untied = float(special.kolmogorov(distance * math.sqrt(n_ref * n_cur / (n_ref + n_cur))))
    if untied < KS_TIED_FAR_TAIL:
        return untied
    return distance, n_ref, n_cur, runs
