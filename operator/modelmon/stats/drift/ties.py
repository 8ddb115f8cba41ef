"""Null distributions of the empirical-CDF tests on tied data (counts, integers, rounded
measurements), conditional on the pooled values.

Part of ``stats`` (pure numpy/scipy), used by ``ks``, ``cvm`` and ``anderson`` when the
pooled sample repeats a value. Their usual p-values assume a continuous distribution. With
ties the two empirical CDFs can only part at the distinct pooled values, so those p-values
are off: conservative for ks (measured: 0.01-0.03 flagged at alpha = 0.05), liberal for
cvm and anderson when counts pile up at one end (up to 0.14). Here the null distribution
is the one a permutation test uses, given the pooled values:

- ks, exactly: the number of reference values among the first ``s`` pooled ones walks as
  a hypergeometric draw from run end to run end of the pooled values; ``ks_tied_pvalue``
  follows that walk and keeps the paths that stay strictly inside the observed distance at
  every run end. Beyond ``KS_TIED_EXACT_MAX_N`` values a side it walks a copy of the runs
  scaled to ``KS_TIED_SCALED_N`` values a side, which approximates the large-sample limit
  (the KS statistic of a Brownian bridge watched at the pooled cumulative shares only).
- cvm and anderson, in the limit: each statistic tends to a quadratic form in that
  Brownian bridge at the run ends, so its law is a weighted sum of independent
  chi-square(1) variables (``quadratic_form_weights``: a generalised eigenproblem whose
  matrices are tridiagonal), whose tail the saddlepoint approximation gives
  (``weighted_chi2_sf``). Without ties the weights are ``1 / (j pi)^2`` and the law is
  the continuous Cramer-von Mises limit (the tests hold the two together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import special

if TYPE_CHECKING:  # the tied Cramer-von Mises and Anderson tails import them when they run
    from scipy import sparse

from modelmon.stats.profile import NumericProfile

#: Runs up to this long move the KS walk one value at a time; longer ones at once.
_STEPWISE_MAX_RUN = 8

#: Walks with short runs go together (``ks_tied_pvalues``) unless the wider windows that
#: costs add more than this many states: about the array work of a value's few operations.
_GROUP_SLACK = 4_000

#: Up to this many values on each side the tied KS p-value is exact (the same limit as
#: scipy's exact untied distribution); above, the runs are scaled down (``KS_TIED_SCALED_N``).
KS_TIED_EXACT_MAX_N = 10_000

#: Values a side of the scaled copy of the runs used above ``KS_TIED_EXACT_MAX_N``.
KS_TIED_SCALED_N = 2_000

#: The tied null is used when the values repeated within either sample hold at least this
#: share of the pooled sample (``tied_runs``); below it the runs hide too little of the
#: empirical CDFs to move the p-value, which stays the continuous one (scipy's, to 1e-9).
TIED_NULL_MIN_SHARE = 0.01

#: Above this many distinct pooled values the runs are grouped into cells of at most
#: ``1 / TIED_MAX_POINTS`` of the pooled sample before a null is computed: the statistic is
#: then watched at fewer points than it is computed at, an error of the order of a cell.
TIED_MAX_POINTS = 4_000

#: ``cvm`` and ``anderson`` integrate over the pooled values, so a coarser grouping moves
#: their limit less than it moves the supremum of ``ks``: their runs are grouped into
#: cells of ``1 / QUADRATIC_MAX_POINTS``.
QUADRATIC_MAX_POINTS = 1_000

#: Up to this many distinct pooled values every weight of the quadratic form is computed
#: (a dense eigenproblem); above, the largest ``QUADRATIC_TOP_WEIGHTS`` are, and the rest
#: enter through their sum (the form's mean less the computed weights').
QUADRATIC_DENSE_MAX = 400
QUADRATIC_TOP_WEIGHTS = 120


def pooled_runs(merged: NDArray[np.float64]) -> NDArray[np.int64]:
    """The length of each run of equal values of a sorted pooled sample, in order."""
    ends = np.flatnonzero(np.append(merged[1:] != merged[:-1], True))
    return np.diff(ends, prepend=-1).astype(np.int64)


def _distinct(sorted_values: NDArray[np.float64]
              ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The distinct values of a sorted array and how often each occurs."""
    starts = np.flatnonzero(np.append(True, sorted_values[1:] != sorted_values[:-1]))
    counts = np.diff(starts, append=sorted_values.size).astype(np.int64)
    return sorted_values[starts], counts


def _repeated(counts: NDArray[np.int64]) -> int:
    """How many values sit in runs of two or more."""
    return int(counts[counts > 1].sum())


def tied_runs(reference: NumericProfile, current_sorted: NDArray[np.float64]
              ) -> NDArray[np.int64] | None:
    """The run lengths of the pooled reference and window when they are tied enough for
    the tied null, else None.

    Tied enough: the values repeated within the reference or within the window hold at
    least ``TIED_NULL_MIN_SHARE`` of the pooled sample (then the pooled runs, which also
    join values the two sides share, hold at least as much). Each side's distinct values
    and counts come from one pass over its sorted array and are merged: no search of one
    sample in the other, so an untied column pays two passes. A column whose values are
    distinct on each side but shared across them is scored as untied.
    """
    n_ref, n_cur = reference.n_present, current_sorted.size
    if n_ref == 0 or n_cur == 0:
        return None
    values_cur, counts_cur = _distinct(current_sorted)
    repeated_cur = _repeated(counts_cur)
    if reference.n_unique == n_ref and repeated_cur == 0:
        return None
    values_ref, counts_ref = _distinct(reference.sorted_values)
    if _repeated(counts_ref) + repeated_cur < TIED_NULL_MIN_SHARE * (n_ref + n_cur):
        return None
    values = np.concatenate((values_ref, values_cur))
    counts = np.concatenate((counts_ref, counts_cur))
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    starts = np.flatnonzero(np.append(True, values[1:] != values[:-1]))
    runs: NDArray[np.int64] = np.add.reduceat(counts, starts).astype(np.int64)
    return runs


def coarsened(runs: NDArray[np.int64], points: int = TIED_MAX_POINTS) -> NDArray[np.int64]:
    """The runs grouped so that at most about ``2 * points`` remain: consecutive runs that
    end inside the same cell of ``1 / points`` of the pooled sample are merged (a run that
    crosses a cell boundary ends a group), unchanged when there are ``points`` or fewer."""
    if runs.size <= points:
        return runs
    ends = np.cumsum(runs)
    cell = ends * points // int(ends[-1])
    last = np.append(cell[1:] != cell[:-1], True)
    grouped: NDArray[np.int64] = np.diff(ends[last], prepend=0).astype(np.int64)
    return grouped


def _walk_runs(n_ref: int, n_cur: int, runs: NDArray[np.int64], reach: float) -> float:
    """The probability, over random splits of the pooled values into ``n_ref`` reference
    and ``n_cur`` current ones, that ``|i N - s n_ref| < reach`` at every run end ``s``
    (``i`` the reference values among the first ``s``, ``N`` the pooled size): that the KS
    distance ``max |i / n_ref - (s - i) / n_cur|`` stays below ``reach / (n_ref n_cur)``.

    ``prob[i - low]`` is the chance of ``i`` reference values at the current run end along
    paths inside the band so far. A run of ``length`` values adds ``a`` reference values
    with the hypergeometric chance ``C(n_ref - i, a) C(n_cur - s + i, length - a) /
    C(N - s, length)``: for a short run, one draw at a time (each a reference value with
    chance ``(n_ref - i) / (N - s)``), for a longer one from a table of log factorials.
    The band holds about ``2 reach / N`` states, so a run costs a few array operations of
    that size per value (short runs) or one of the band's size squared (long ones).
    """
    total = n_ref + n_cur
    log_fact = special.gammaln(np.arange(total + 1, dtype=np.float64) + 1.0)

    def log_choose(whole: NDArray[np.int64], part: NDArray[np.int64]) -> NDArray[np.float64]:
        valid = (part >= 0) & (part <= whole)
        whole, part = np.where(valid, whole, 0), np.where(valid, part, 0)
        return np.where(valid, log_fact[whole] - log_fact[part] - log_fact[whole - part],
                        -np.inf)

    low = 0
    prob: NDArray[np.float64] = np.ones(1)
    done = 0
    for length in runs.tolist():
        after = done + length
        new_low = max(0, after - n_cur, math.floor((after * n_ref - reach) / total) + 1)
        new_high = min(n_ref, after, math.ceil((after * n_ref + reach) / total) - 1)
        if new_high < new_low:
            return 0.0
        width = new_high - new_low + 1
        if length <= _STEPWISE_MAX_RUN:
            # One value at a time (draws without replacement compose into the
            # hypergeometric), the band applied at the run's end only.
            for step in range(done, after):
                states = np.arange(low, low + prob.size, dtype=np.float64)
                spread = np.zeros(prob.size + 1)  # states low .. low + prob.size
                spread[:-1] = prob * ((n_cur - step + states) / (total - step))
                spread[1:] += prob * ((n_ref - states) / (total - step))
                prob = spread
            offset = low - new_low  # where state ``low`` sits in the new band
            first, last = max(0, -offset), min(prob.size, width - offset)
            moved = np.zeros(width)
            moved[offset + first:offset + last] = prob[first:last]
            low, prob, done = new_low, moved, after
            continue
        before = np.arange(low, low + prob.size, dtype=np.int64)[:, None]
        if length + 1 < width:  # each state moves to at most length + 1 others
            added = np.arange(length + 1, dtype=np.int64)[None, :]
            target = before + added
        else:
            target = np.arange(new_low, new_high + 1, dtype=np.int64)[None, :]
            added = target - before
        logs = (log_choose(n_ref - before, added)
                + log_choose(n_cur - done + before, length - added)
                - (log_fact[total - done] - log_fact[length] - log_fact[total - after]))
        chance = prob[:, None] * np.exp(logs)
        if length + 1 < width:
            keep = (target >= new_low) & (target <= new_high)
            moved = np.bincount((target[keep] - new_low).astype(np.intp), chance[keep],
                                minlength=width).astype(np.float64)
        else:
            moved = chance.sum(axis=0)
        low, prob, done = new_low, moved, after
    return float(prob.sum())


def _walk_stepwise(n_ref: int, n_cur: int, runs_list: list[NDArray[np.int64]],
                   reaches: list[float]) -> NDArray[np.float64]:
    """``_inside_probability`` of several walks with the same sizes whose runs are all at
    most ``_STEPWISE_MAX_RUN`` long, walked together one value at a time: row ``c`` of
    ``prob`` holds walk ``c``'s chances, so each value costs a few array operations for
    all the walks instead of several per walk.

    The states are absolute (reference values so far), in a window of ``width`` that
    follows the line ``s n_ref / N`` and is wide enough for the widest band plus a run's
    spread on each side; it moves up by one state (``shift``) whenever the line crosses
    an integer. The two chances of a value (a current or a reference value) come from
    tables computed for a block of values at once, already multiplied by each walk's band
    where that walk's run ends (1 inside, 0 outside): the products and sums are those of
    ``_inside_probability``, in the same order, so the results are the same.
    """
    total = n_ref + n_cur
    count = len(runs_list)
    longest = max(int(runs.max()) for runs in runs_list)
    widest = max(reaches)
    # Along a run of ``longest`` values the chances stay within the band at the run's
    # start, which the line leaves by ``longest n_ref / N`` below, and spread up to
    # ``longest`` above it, ``longest n_cur / N`` above the line: the window's lowest state
    # stays below every chance, and its top one above.
    width = max(math.ceil(2.0 * widest / total), 0) + longest + 5
    steps = np.arange(total + 1, dtype=np.int64)
    base = np.floor((steps * n_ref - widest - longest * n_ref) / total).astype(np.int64) - 1
    shift = np.diff(base).tolist()
    # Each walk's band after each value, as positions in the window: the states that
    # leave it open (0 .. width) after a value that ends none of the walk's runs.
    band_low = np.zeros((total, count), dtype=np.int32)
    band_high = np.full((total, count), width, dtype=np.int32)
    for row, (runs, reach) in enumerate(zip(runs_list, reaches, strict=True)):
        ends = np.cumsum(runs)
        low = np.maximum(np.maximum(ends - n_cur, 0),
                         np.floor((ends * n_ref - reach) / total).astype(np.int64) + 1)
        high = np.minimum(np.minimum(ends, n_ref),
                          np.ceil((ends * n_ref + reach) / total).astype(np.int64) - 1)
        # The band of the value that ends a run at ``end``, from the window before it.
        window = base[ends - 1]
        band_low[ends - 1, row] = np.clip(low - window, 0, width + 1)
        band_high[ends - 1, row] = np.clip(high - window, -1, width)
    offsets = np.arange(width + 1, dtype=np.int32)
    block = min(total, max(1, (1 << 15) // (count * (width + 1))))
    prob = np.zeros((count, width))
    prob[:, -base[0]] = 1.0  # state 0 before any value
    below = prob[:, :-1]  # the states a move can leave (the top one holds no chance)
    # The top state of the window never holds a chance (the width keeps it above every
    # band), so the state above it stays 0 and the moves out of the top state are left out.
    # Two buffers in turn (never the one ``prob`` views), with their views made once: the
    # value's chances land on ``head`` (stays) and ``tail`` (moves); the next ``prob``
    # (and ``below``) start at ``shift`` in it.
    views = []
    for buffer in (np.zeros((count, width + 1)), np.zeros((count, width + 1))):
        views.append((buffer[:, :width], buffer[:, 1:width],
                      [(buffer[:, lift:lift + width], buffer[:, lift:lift + width - 1])
                       for lift in (0, 1)]))
    moved = np.empty((count, width - 1))
    inside = np.empty((block, count, width + 1), dtype=bool)
    above = np.empty((block, count, width + 1), dtype=bool)
    stays = np.empty((block, count, width))
    moves = np.empty((block, count, width - 1))
    for start in range(0, total, block):
        stop = min(start + block, total)
        size = stop - start
        step = steps[start:stop, None]
        states = base[start:stop, None] + offsets[None, :width]  # before the value
        left = (total - step).astype(np.float64)
        stay = (n_cur - step + states).astype(np.float64) / left
        move = (n_ref - states[:, :-1]).astype(np.float64) / left
        # (value, walk, position): whether the state landed on is inside the walk's band.
        np.greater_equal(offsets, band_low[start:stop, :, None], out=inside[:size])
        np.less_equal(offsets, band_high[start:stop, :, None], out=above[:size])
        inside[:size] &= above[:size]
        # The chance of staying at a state, of moving up from it, each times the band
        # at the state it lands on.
        np.multiply(stay[:, None, :], inside[:size, :, :width], out=stays[:size])
        np.multiply(move[:, None, :], inside[:size, :, 1:width], out=moves[:size])
        for index, (stay_row, move_row, lift) in enumerate(
                zip(stays[:size], moves[:size], shift[start:stop], strict=True)):
            head, tail, shifted = views[(start + index) & 1]
            np.multiply(prob, stay_row, head)
            np.multiply(below, move_row, moved)
            np.add(tail, moved, tail)
            prob, below = shifted[lift]
    sums: NDArray[np.float64] = prob.sum(axis=1)
    return sums


def _inside_probability(n_ref: int, n_cur: int, runs: NDArray[np.int64], reach: float
                        ) -> float:
    """The chance that a random split's walk stays inside the band (``_walk_runs``): walked
    one value at a time (``_walk_stepwise``) when every run is short, else run by run."""
    if _stepwise(n_ref, n_cur, runs, reach):
        return float(_walk_stepwise(n_ref, n_cur, [runs], [reach])[0])
    return _walk_runs(n_ref, n_cur, runs, reach)


def _stepwise(n_ref: int, n_cur: int, runs: NDArray[np.int64], reach: float) -> bool:
    """Whether a walk goes one value at a time (``_walk_stepwise``): all its runs are
    short, and its band is narrower than the smaller side (in the far tail the band is
    as wide as the samples, and ``_walk_runs`` follows it where the sides narrow it)."""
    return (int(runs.max()) <= _STEPWISE_MAX_RUN
            and 2.0 * reach / (n_ref + n_cur) < min(n_ref, n_cur) / 2.0)


#: One walk: the sizes a side, the runs and the reach (``_inside_probability``).
Walk = tuple[int, int, NDArray[np.int64], float]


def _ks_walk(distance: float, n_ref: int, n_cur: int, runs: NDArray[np.int64]) -> Walk:
    """The walk whose chance of staying inside gives ``ks_tied_pvalue``: the runs
    themselves up to ``KS_TIED_EXACT_MAX_N`` values a side and ``TIED_MAX_POINTS`` runs,
    a copy of them scaled to ``KS_TIED_SCALED_N`` values a side beyond."""
    if max(n_ref, n_cur) <= KS_TIED_EXACT_MAX_N and runs.size <= TIED_MAX_POINTS:
        # Distances are multiples of 1 / (n_ref n_cur): stay a half step below the observed.
        return n_ref, n_cur, runs, round(distance * n_ref * n_cur) - 0.5
    side = KS_TIED_SCALED_N
    total = n_ref + n_cur
    limit = distance * math.sqrt(n_ref * n_cur / total)  # the statistic on the bridge's scale
    ends = np.unique(np.round(np.cumsum(runs) * (2.0 * side / total)).astype(np.int64))
    scaled = np.diff(ends[ends > 0], prepend=0)
    return side, side, scaled, limit * math.sqrt(2.0 / side) * side * side


def _pvalue(inside: float) -> float:
    return min(max(1.0 - inside, 0.0), 1.0)


def ks_tied_pvalue(distance: float, n_ref: int, n_cur: int, runs: NDArray[np.int64]) -> float:
    """``P(D >= distance)`` for the two-sample KS distance ``D`` of a random split of the
    pooled values (whose runs of equal values have the lengths ``runs``, in order) into
    ``n_ref`` and ``n_cur`` values: the permutation p-value, exact up to
    ``KS_TIED_EXACT_MAX_N`` values a side and ``TIED_MAX_POINTS`` runs, and from a copy of
    the runs scaled to ``KS_TIED_SCALED_N`` values a side beyond.
    Without ties it equals scipy's exact untied p-value."""
    return _pvalue(_inside_probability(*_ks_walk(distance, n_ref, n_cur, runs)))


def ks_tied_pvalues(distances: Sequence[float], n_refs: Sequence[int], n_curs: Sequence[int],
                    runs_list: Sequence[NDArray[np.int64]]) -> list[float]:
    """``ks_tied_pvalue`` of several columns (a check's tied KS columns), the same numbers:
    the walks with the same sizes whose runs are all short are walked together
    (``_walk_stepwise``), so the per-value cost of the walk is paid once for all of them;
    the others one by one."""
    walks = [_ks_walk(*problem) for problem in zip(distances, n_refs, n_curs, runs_list,
                                                   strict=True)]
    inside = [0.0] * len(walks)
    together: dict[tuple[int, int], list[int]] = {}
    for index, (n_ref, n_cur, runs, reach) in enumerate(walks):
        if _stepwise(n_ref, n_cur, runs, reach):
            together.setdefault((n_ref, n_cur), []).append(index)
        else:
            inside[index] = _walk_runs(n_ref, n_cur, runs, reach)
    for (n_ref, n_cur), indices in together.items():
        # Every walk of a group pays the widest band's window: a walk joins the group of
        # narrower ones unless that costs more states than a value's array operations
        # (``_GROUP_SLACK``; bands of similar width share one walk).
        groups: list[list[int]] = []
        widths: list[float] = []
        for index in sorted(indices, key=lambda index: walks[index][3]):
            width = 2.0 * max(walks[index][3], 0.0) / (n_ref + n_cur)
            if groups and (len(groups[-1]) + 1) * width - (sum(widths) + width) <= _GROUP_SLACK:
                groups[-1].append(index)
                widths.append(width)
            else:
                groups.append([index])
                widths = [width]
        for group in groups:
            found = _walk_stepwise(n_ref, n_cur, [walks[i][2] for i in group],
                                   [walks[i][3] for i in group])
            for index, value in zip(group, found.tolist(), strict=True):
                inside[index] = value
    return [_pvalue(value) for value in inside]


def _cumulative(shares: NDArray[np.float64]) -> NDArray[np.float64]:
    """The cumulative shares at the interior run ends (the last, 1, is left out)."""
    return np.cumsum(shares)[:-1]


#: A symmetric tridiagonal matrix as its diagonal and the diagonal beside it.
Tridiagonal = tuple[NDArray[np.float64], NDArray[np.float64]]


def _bridge_precision(shares: NDArray[np.float64]) -> Tridiagonal:
    """The inverse covariance of a Brownian bridge at the interior run ends: tridiagonal,
    ``1/p_j + 1/p_(j+1)`` on the diagonal and ``-1/p_(j+1)`` beside it (``p`` the shares,
    which are the gaps between the ends)."""
    inverse = 1.0 / shares
    return inverse[:-1] + inverse[1:], -inverse[1:-1]


def _dense(matrix: Tridiagonal) -> NDArray[np.float64]:
    diagonal, beside = matrix
    return np.diag(diagonal) + np.diag(beside, 1) + np.diag(beside, -1)


def _sparse(matrix: Tridiagonal) -> sparse.csc_array:
    from scipy import sparse

    diagonal, beside = matrix
    size = diagonal.size
    index = np.arange(size)
    rows = np.concatenate((index, index[:-1], index[1:]))
    cols = np.concatenate((index, index[1:], index[:-1]))
    values = np.concatenate((diagonal, beside, beside))
    return sparse.csc_array((values, (rows, cols)), shape=(size, size))


def _generalised_weights(form: Tridiagonal, precision: Tridiagonal, mean: float
                         ) -> tuple[NDArray[np.float64], float]:
    """The weights ``lambda`` of ``Y' A Y = sum lambda chi2_1`` for ``Y`` Gaussian with
    precision ``P`` (``A v = lambda P v``), and the part of the form's ``mean`` the
    weights returned leave out (0 when all are returned)."""
    from scipy import linalg  # scipy's linear algebra and optimizers are slow to import;
    from scipy.sparse import linalg as sparse_linalg  # the KS tails never need them

    size = form[0].size
    if size <= QUADRATIC_DENSE_MAX:
        weights = linalg.eigh(_dense(form), _dense(precision), eigvals_only=True)
        return np.clip(np.asarray(weights, dtype=np.float64), 0.0, None), 0.0
    top = sparse_linalg.eigsh(_sparse(form), k=QUADRATIC_TOP_WEIGHTS, M=_sparse(precision),
                              which="LA", v0=np.ones(size), return_eigenvectors=False)
    weights = np.clip(np.asarray(top, dtype=np.float64), 0.0, None)
    return weights, max(mean - float(weights.sum()), 0.0)


def quadratic_form_weights(shares: NDArray[np.float64], form: str
                           ) -> tuple[NDArray[np.float64], float]:
    """The chi-square weights of the limit of a tied statistic, and the mean left out of
    them (see ``_generalised_weights``), for pooled values with these ``shares`` (in
    order, summing to 1, at least two).

    ``form="cvm"``: ``sum_j p_j B(t_j)^2`` over the run ends, the limit of the tied
    Cramer-von Mises ``T``. ``form="anderson"``: ``sum_z w_z M_z^2`` with ``M_z`` the mean
    of the bridge at the two ends of run ``z`` and ``w_z = p_z / (h_z (1 - h_z) - p_z /
    4)`` (``h_z`` its mid cumulative share), the limit of Scholz and Stephens' midrank
    ``A2akN`` for two samples.
    """
    ends = _cumulative(shares)
    precision = _bridge_precision(shares)
    if form == "cvm":
        mean = float(np.dot(shares[:-1], ends * (1.0 - ends)))
        return _generalised_weights((shares[:-1], np.zeros(ends.size - 1)), precision, mean)
    starts = np.concatenate(([0.0], ends))  # t_(z-1) for each run z
    mid = starts + shares / 2.0
    weight = shares / (mid * (1.0 - mid) - shares / 4.0)
    # Y_j enters M_j and M_(j+1) with 1/2 each: A = C' W C is tridiagonal.
    matrix = ((weight[:-1] + weight[1:]) / 4.0, weight[1:-1] / 4.0)
    left = np.concatenate(([0.0], ends))
    right = np.concatenate((ends, [1.0]))
    variance = (left * (1 - left) + 2 * left * (1 - right) + right * (1 - right)) / 4.0
    return _generalised_weights(matrix, precision, float(np.dot(weight, variance)))


def weighted_chi2_sf(value: float, weights: NDArray[np.float64], shift: float = 0.0) -> float:
    """``P(shift + sum_j w_j X_j > value)`` for independent chi-square(1) ``X_j``, by the
    Lugannani-Rice saddlepoint approximation (Kuonen 1999 shows it within about 1% of the
    exact tail for such quadratic forms, far tails included; the tests hold it to the
    series of the continuous Cramer-von Mises and Anderson-Darling limits and to a
    simulation).

    With the cumulant generating function ``K(s) = shift s - sum log(1 - 2 w_j s) / 2``,
    the saddlepoint ``s`` solves ``K'(s) = value``; then ``r = sign(s) sqrt(2 (s value -
    K(s)))``, ``q = s sqrt(K''(s))`` and the tail is ``1 - Phi(r) - phi(r) (1/r - 1/q)``.
    Near the mean, where both vanish, the first terms of its expansion there are used.
    """
    weights = weights[weights > 0.0]
    level = value - shift
    if weights.size == 0:
        return 1.0 if level < 0.0 else 0.0
    if level <= 0.0:
        return 1.0
    mean = float(weights.sum())
    variance = 2.0 * float(np.dot(weights, weights))
    third = 8.0 * float(np.sum(weights**3))
    if abs(level - mean) < 1e-4 * math.sqrt(variance):
        return 0.5 - third / (6.0 * math.sqrt(2.0 * math.pi) * math.pow(variance, 1.5))

    def slope(point: float) -> float:  # K'(s) - value, shift left out on both sides
        return float(np.sum(weights / (1.0 - 2.0 * weights * point))) - level

    from scipy import optimize

    upper = 0.5 / float(weights.max())  # K' grows without bound as s nears it
    if level > mean:
        saddle = optimize.brentq(slope, 0.0, upper * (1.0 - 1e-15), xtol=1e-300,
                                 rtol=1e-14, maxiter=500)
    else:
        low = -1.0 / upper
        while slope(low) > 0.0:
            low *= 2.0
        saddle = optimize.brentq(slope, low, 0.0, xtol=1e-300, rtol=1e-14, maxiter=500)
    factor = 1.0 - 2.0 * weights * saddle
    cumulant = -0.5 * float(np.sum(np.log(factor)))
    curvature = 2.0 * float(np.sum(weights * weights / (factor * factor)))
    root = math.copysign(math.sqrt(max(2.0 * (saddle * level - cumulant), 0.0)), saddle)
    scaled = saddle * math.sqrt(curvature)
    tail = special.ndtr(-root) - math.exp(-0.5 * root * root) / math.sqrt(2.0 * math.pi) * (
        1.0 / root - 1.0 / scaled)
    return min(max(float(tail), 0.0), 1.0)


def quadratic_tied_pvalue(value: float, runs: NDArray[np.int64], form: str) -> float:
    """The limiting p-value of a tied ``cvm`` statistic ``T`` or ``anderson`` statistic
    ``A2akN * N / (N - 1)`` (``form``) for a pooled sample with these run lengths
    (grouped into ``QUADRATIC_MAX_POINTS`` cells by ``coarsened`` when there are more)."""
    grouped = coarsened(runs, QUADRATIC_MAX_POINTS)
    if grouped.size < 2:  # one value on both sides: nothing can differ
        return 1.0
    shares = grouped / float(grouped.sum())
    weights, rest = quadratic_form_weights(shares, form)
    return weighted_chi2_sf(value, weights, rest)
