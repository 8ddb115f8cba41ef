"""Divergences between two histograms: PSI, Jensen-Shannon, Kullback-Leibler, Hellinger
and total variation.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``. Each method turns both sides into proportions over the same cells and
compares them: for numeric columns the cells are the reference's ten equal-frequency bins
(fitted once, ``profile.bin_edges``; the current window is counted into them with one
binary search per value), for categorical columns the union of both sides' categories.
The formulas live in plain functions of two proportion vectors so that both kinds share
them and the tests can check them against hand-computed answers.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelmon.stats.drift.base import CategoricalMethod, NumericMethod, register
from modelmon.stats.profile import CategoricalProfile, NumericProfile, align

#: Proportion given to a cell that is empty on one side, for the divergences with a log
#: ratio (PSI, KL), which are infinite otherwise. 1e-4 (0.01%) is the value Evidently
#: substitutes; with it, a 10% reference bin that empties adds 0.1 * ln(1000) ~ 0.69 to PSI.
EMPTY_CELL = 1e-4

Proportions = NDArray[np.float64]


def proportions(counts: NDArray[np.int64]) -> Proportions:
    """Counts as proportions of their total."""
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def smooth(cells: Proportions) -> Proportions:
    """Empty cells take ``EMPTY_CELL``; the others are left as they are (no renormalising)."""
    return np.where(cells > 0, cells, EMPTY_CELL)


def psi(reference: Proportions, current: Proportions) -> float:
    """Population stability index ``sum((cur - ref) * ln(cur / ref))`` on smoothed cells."""
    ref, cur = smooth(reference), smooth(current)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def kl_divergence(reference: Proportions, current: Proportions) -> float:
    """KL divergence reference || current (natural log) of the smoothed proportions,
    renormalised to sum to one as ``scipy.stats.entropy`` does."""
    ref, cur = smooth(reference), smooth(current)
    return float(np.sum(special.rel_entr(ref / ref.sum(), cur / cur.sum())))


def jensenshannon(reference: Proportions, current: Proportions) -> float:
    """Jensen-Shannon distance (square root of the divergence), natural log: in
    [0, sqrt(ln 2)] ~ [0, 0.833]; ``scipy.spatial.distance.jensenshannon``'s default base.
    Empty cells need no smoothing."""
    mid = (reference + current) / 2.0
    div = np.sum(special.rel_entr(reference, mid)) + np.sum(special.rel_entr(current, mid))
    return math.sqrt(max(float(div) / 2.0, 0.0))


def hellinger(reference: Proportions, current: Proportions) -> float:
    """Hellinger distance ``||sqrt(ref) - sqrt(cur)||_2 / sqrt(2)``, in [0, 1]."""
    diff = np.sqrt(reference) - np.sqrt(current)
    return float(np.sqrt(np.dot(diff, diff) / 2.0))


def tvd(reference: Proportions, current: Proportions) -> float:
    """Total variation distance, half the L1 distance between the proportions, in [0, 1]."""
    return float(np.sum(np.abs(reference - current)) / 2.0)


def _binned(reference: NumericProfile, current: NDArray[np.float64]
            ) -> tuple[Proportions, Proportions]:
    return proportions(reference.bin_counts), proportions(reference.bin_sorted(current))


def _categories(reference: CategoricalProfile, current: CategoricalProfile
                ) -> tuple[Proportions, Proportions]:
    ref, cur, _ = align(reference, current)
    return proportions(ref), proportions(cur)


_BINS = "the reference's 10 equal-frequency bins"
_CATS = "the categories of both sides"


# Numeric: the reference's equal-frequency bins.

@register
class NumericPSI(NumericMethod):
    """Population stability index over the reference's ten equal-frequency bins.

    Empty bins count as 0.01% (``EMPTY_CELL``). Drift at 0.1 or more: the credit-scoring
    rule of thumb (below 0.1 no significant shift, 0.1-0.25 moderate, above 0.25 major;
    Siddiqi, *Credit Risk Scorecards*, 2006), also Evidently's default.
    """

    name = "psi"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Population stability index over {_BINS}; drift at >= 0.1 "
               "(credit-scoring rule of thumb: < 0.1 no significant shift).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        return psi(*_binned(reference, current)), None


@register
class NumericJensenShannon(NumericMethod):
    """Jensen-Shannon distance (natural log) between the binned proportions.

    Bounded by sqrt(ln 2) ~ 0.833; drift at 0.1 or more, Evidently's default for
    Jensen-Shannon (its large-data method for low-cardinality columns).
    """

    name = "jensenshannon"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Jensen-Shannon distance (natural log) over {_BINS}; drift at >= 0.1 "
               "(Evidently's default).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        return jensenshannon(*_binned(reference, current)), None


@register
class NumericKL(NumericMethod):
    """Kullback-Leibler divergence reference || current (natural log) over the bins.

    Empty bins count as 0.01% before both sides are renormalised (``scipy.stats.entropy``).
    Unbounded and asymmetric; drift at 0.1 or more, Evidently's default for KL.
    """

    name = "kl"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"KL divergence reference||current (natural log) over {_BINS}, empty bins "
               "as 0.01%; drift at >= 0.1 (Evidently's default).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        return kl_divergence(*_binned(reference, current)), None


@register
class NumericHellinger(NumericMethod):
    """Hellinger distance between the binned proportions, in [0, 1].

    Drift at 0.1 or more, Evidently's default for Hellinger.
    """

    name = "hellinger"
    kind = "numeric"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Hellinger distance over {_BINS}, in [0, 1]; drift at >= 0.1 "
               "(Evidently's default).")

    def statistic(self, reference: NumericProfile, current: NDArray[np.float64]
                  ) -> tuple[float, float | None]:
        return hellinger(*_binned(reference, current)), None


# Categorical: the union of both sides' categories.

@register
class CategoricalPSI(CategoricalMethod):
    """Population stability index over the categories of both sides.

    A category absent on one side counts as 0.01% there (``EMPTY_CELL``). Drift at 0.1 or
    more: the credit-scoring rule of thumb (Siddiqi 2006), also Evidently's default.
    """

    name = "psi"
    kind = "categorical"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Population stability index over {_CATS}; drift at >= 0.1 "
               "(credit-scoring rule of thumb: < 0.1 no significant shift).")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        return psi(*_categories(reference, current)), None


@register
class CategoricalJensenShannon(CategoricalMethod):
    """Jensen-Shannon distance (natural log) between the category proportions.

    The ``auto`` choice for categorical columns with a large reference. Bounded by
    sqrt(ln 2) ~ 0.833; drift at 0.1 or more, Evidently's default for large data.
    """

    name = "jensenshannon"
    kind = "categorical"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Jensen-Shannon distance (natural log) over {_CATS}; drift at >= 0.1 "
               "(Evidently's large-data default).")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        return jensenshannon(*_categories(reference, current)), None


@register
class CategoricalHellinger(CategoricalMethod):
    """Hellinger distance between the category proportions, in [0, 1].

    Drift at 0.1 or more, Evidently's default for Hellinger.
    """

    name = "hellinger"
    kind = "categorical"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Hellinger distance over {_CATS}, in [0, 1]; drift at >= 0.1 "
               "(Evidently's default).")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        return hellinger(*_categories(reference, current)), None


@register
class CategoricalTVD(CategoricalMethod):
    """Total variation distance: the share of the current window that would have to change
    category to match the reference, in [0, 1].

    Drift at 0.1 or more (a tenth of the rows), the same default as the other bounded
    distances here and as Evidently's large-data default.
    """

    name = "tvd"
    kind = "categorical"
    default_threshold = 0.1
    uses_p_value = False
    summary = (f"Total variation distance (half the L1 distance) over {_CATS}, in [0, 1]; "
               "drift at >= 0.1 (Evidently's large-data default).")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        return tvd(*_categories(reference, current)), None
