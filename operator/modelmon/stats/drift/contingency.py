"""Tests on the 2 x k contingency table of category counts: chi-square homogeneity and the
two-proportion z-test.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profile and
``evaluation``. Both samples are random, so the question is whether the two rows of the
table (reference counts, current counts) come from one distribution: a test of
homogeneity, ``scipy.stats.chi2_contingency(table, correction=False)``. A goodness-of-fit
test that takes the reference's proportions as exact ignores the reference's own sampling
error and flags undrifted columns ever more often as the samples grow; this module does not
do that.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from modelmon.stats.drift.base import CategoricalMethod, register
from modelmon.stats.profile import CategoricalProfile, align


def contingency_table(reference: CategoricalProfile, current: CategoricalProfile
                      ) -> NDArray[np.float64]:
    """The 2 x k table (reference row, current row) over the categories seen on either side.

    A category present on one side only is a column with a zero; a category with no count on
    either side is dropped (its expected count would be zero).
    """
    ref, cur, _ = align(reference, current)
    table = np.vstack([ref, cur]).astype(np.float64)
    return table[:, table.sum(axis=0) > 0]


def chi2_homogeneity(table: NDArray[np.float64]) -> tuple[float, float]:
    """Pearson's chi-square statistic and p-value for a 2 x k table, no continuity
    correction: ``scipy.stats.chi2_contingency(table, correction=False)``. A single column
    (k = 1) has zero degrees of freedom: statistic 0, p-value 1, as in scipy."""
    categories = table.shape[1]
    if categories < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(np.sum(np.square(table - expected) / expected))
    return stat, float(special.chdtrc(categories - 1, stat))


def cramers_v(chi_square: float, table: NDArray[np.float64]) -> float:
    """Cramer's V of a 2 x k table from its chi-square statistic: sqrt(chi2 / N), as a
    2-row table has min(2, k) - 1 = 1 (0 for a single column, which cannot differ)."""
    total = float(table.sum())
    if table.shape[1] < 2 or total == 0:
        return 0.0
    return math.sqrt(chi_square / total)


@register
class ChiSquare(CategoricalMethod):
    """Pearson's chi-square test of homogeneity on the 2 x k table of counts.

    Not a goodness-of-fit test against the reference's proportions (see the module
    docstring). Drift when p < 0.05, the conventional significance level (also Evidently's
    default for its small-data categorical test). The approximation wants expected counts
    of about five or more per cell; rare categories make it liberal.
    """

    name = "chisquare"
    kind = "categorical"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("Chi-square test of homogeneity on the 2 x k table of category counts (not "
               "goodness-of-fit); drift when p < 0.05 (conventional significance level).")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        return chi2_homogeneity(contingency_table(reference, current))

    def effect_size(self, reference: CategoricalProfile, current: CategoricalProfile,
                    statistic: float) -> float:
        return cramers_v(statistic, contingency_table(reference, current))


@register
class TwoProportionZ(CategoricalMethod):
    """Two-proportion z-test (pooled variance) for a column with two categories.

    Statistic: z for the share of the first category (reference minus current); the
    two-sided p-value equals chi-square's on the 2 x 2 table without correction. Drift when
    p < 0.05, the conventional significance level (Evidently's default for binary columns).
    More than two categories across both sides (e.g. a new category in the current window)
    is not scored and the message points to ``chisquare``.
    """

    name = "ztest"
    kind = "categorical"
    default_threshold = 0.05
    uses_p_value = True
    summary = ("Two-proportion z-test (pooled) for two-category columns; drift when p < 0.05 "
               "(conventional significance level); more categories need chisquare.")

    def statistic(self, reference: CategoricalProfile, current: CategoricalProfile
                  ) -> tuple[float, float | None]:
        table = contingency_table(reference, current)
        categories = table.shape[1]
        if categories > 2:
            return math.nan, math.nan
        if categories < 2:
            return 0.0, 1.0
        n_ref, n_cur = table.sum(axis=1)
        pooled = table[:, 0].sum() / (n_ref + n_cur)
        std_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
        z_score = (table[0, 0] / n_ref - table[1, 0] / n_cur) / std_error
        return float(z_score), float(special.erfc(abs(z_score) / math.sqrt(2.0)))

    def effect_size(self, reference: CategoricalProfile, current: CategoricalProfile,
                    statistic: float) -> float:
        """The pooled z squared is the 2 x 2 table's chi-square: V is |z| / sqrt(N)."""
        return cramers_v(statistic * statistic, contingency_table(reference, current))

    def caveat(self, reference: CategoricalProfile, current: CategoricalProfile,
               statistic: float, p_value: float | None) -> str | None:
        categories = contingency_table(reference, current).shape[1]
        if categories > 2:
            return (f"not scored: ztest compares two categories and this column has {categories} "
                    "across both sides; use chisquare")
        return None
