"""Drift methods: the registry, every method, and the ``auto`` rule.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profiles and
``evaluation``. Importing this package registers every method: one module per test on the
empirical CDFs (``ks``, ``cvm``, ``anderson``; ``edf`` re-exports the three under their
former common name), and one per family of the others (``distance`` for the CDF distances,
``divergence`` for the histogram divergences, ``contingency`` for the count-table tests).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.drift import anderson, contingency, cvm, distance, divergence, edf, ks
from modelmon.stats.drift.base import (
    AnyMethod,
    CategoricalMethod,
    DriftMethod,
    DriftResult,
    NumericMethod,
    UnknownMethodError,
    get_method,
    method_names,
    methods,
    register,
)
from modelmon.stats.drift.correction import CORRECTIONS, adjusted_p_values
from modelmon.stats.profile import FeatureKind, NumericProfile

#: ``auto`` uses the tests up to this many reference rows and the distances above it.
AUTO_SMALL_REFERENCE_ROWS = 1000

#: ``auto`` treats a numeric column with at most this many distinct reference values as
#: categorical.
AUTO_MAX_DISCRETE_UNIQUE = 5

#: A numeric reference is tied (counts, integers, rounded measurements) when its distinct
#: values are at most this share of its present values; ``auto`` then scores it with
#: ``cvm``, whose statistic handles ties, instead of ``ks``, whose p-value is conservative
#: on them (measured at alpha = 0.05: 0.01-0.03 instead of 0.05).
AUTO_TIED_UNIQUE_SHARE = 0.5

#: ``cvm`` scores tied data with the ECDF form of its statistic and the continuous
#: asymptotic p-value, which holds alpha on counts and rounded values while the ties are
#: spread out. It does not when one value holds more than this share of the reference ...
AUTO_CVM_MAX_VALUE_SHARE = 0.25

#: ... or when the values pile up at one end, which ``cvm_null_mean_ratio`` measures: it
#: flags too often when they pile up at the low end (geometric counts: 0.07-0.08 at
#: alpha = 0.05), too rarely at the high end. ``auto`` uses ``cvm`` while the ratio is
#: within this of 1.
AUTO_CVM_NULL_MEAN_TOLERANCE = 0.03

#: Tied data that ``cvm`` does not fit is scored by ``chisquare`` over its values when it
#: has at most this many of them, by ``ks`` (conservative) when it has more.
AUTO_MAX_VALUE_CATEGORIES = 50

AUTO = "auto"


def _runs(sorted_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The share of each distinct value of a non-empty sorted array, in order."""
    starts = np.flatnonzero(np.diff(sorted_values)) + 1
    runs = np.diff(starts, prepend=0, append=sorted_values.size)
    return runs / float(sorted_values.size)


def largest_value_share(sorted_values: NDArray[np.float64]) -> float:
    """The share of the most frequent value in a sorted array (0 when it is empty)."""
    if sorted_values.size == 0:
        return 0.0
    return float(_runs(sorted_values).max())


def cvm_null_mean_ratio(sorted_values: NDArray[np.float64]) -> float:
    """The mean of ``cvm``'s tied statistic without drift, for data distributed as these
    sorted values, over its mean on continuous data (1/6): ``6 * sum_j p_j t_j (1 - t_j)``
    over the distinct values' shares ``p_j`` and cumulative shares ``t_j``. 1 for data
    without ties; above 1 when the values pile up at the low end, below at the high end.
    """
    if sorted_values.size == 0:
        return 1.0
    shares = _runs(sorted_values)
    upto = np.cumsum(shares)
    return 6.0 * float(np.dot(shares, upto * (1.0 - upto)))


def is_tied(reference: NumericProfile) -> bool:
    """The reference repeats its values enough for ``auto`` to treat them as discrete:
    distinct values at most ``AUTO_TIED_UNIQUE_SHARE`` of the present ones."""
    return reference.n_unique <= AUTO_TIED_UNIQUE_SHARE * reference.n_present


def cvm_fits_ties(reference: NumericProfile) -> bool:
    """``cvm``'s p-value holds alpha on data tied like this reference: no value holds more
    than ``AUTO_CVM_MAX_VALUE_SHARE`` of it and its ``cvm_null_mean_ratio`` is within
    ``AUTO_CVM_NULL_MEAN_TOLERANCE`` of 1."""
    values = reference.sorted_values
    return (largest_value_share(values) <= AUTO_CVM_MAX_VALUE_SHARE
            and abs(cvm_null_mean_ratio(values) - 1.0) <= AUTO_CVM_NULL_MEAN_TOLERANCE)


def auto_method(kind: FeatureKind, reference_rows: int, n_unique: int,
                reference: NumericProfile | None = None) -> str:
    """The method name the ``auto`` rule picks for a column (Evidently's published rule,
    made tie-aware).

    Up to 1000 reference rows: a numeric column with more than 5 distinct values goes to
    ``ks``, unless its fitted ``reference`` is tied (``is_tied``: distinct values at most
    half the present ones): then to ``cvm`` when its p-value holds on such ties
    (``cvm_fits_ties``: no value holds more than 25% of the reference, the values do not
    pile up at one end), else to ``chisquare`` over its values when it has at most 50 of
    them, else still ``ks``. Other columns: ``ztest`` when there are exactly two categories, else
    ``chisquare``. Above 1000 rows: ``wasserstein`` (normed) for a numeric column with
    more than 5 distinct values, otherwise ``jensenshannon`` on categories. Without a
    ``reference`` a numeric column counts as untied.

    Only the name is returned. Whenever the name is a categorical method for a numeric
    column, the caller must score the column as categorical: look the method up with
    ``kind="categorical"`` and profile both sides with ``fit_categorical``.
    """
    continuous = kind == "numeric" and n_unique > AUTO_MAX_DISCRETE_UNIQUE
    if reference_rows <= AUTO_SMALL_REFERENCE_ROWS:
        if continuous:
            if reference is None or not is_tied(reference):
                return "ks"
            if cvm_fits_ties(reference):
                return "cvm"
            return "chisquare" if n_unique <= AUTO_MAX_VALUE_CATEGORIES else "ks"
        return "ztest" if n_unique == 2 else "chisquare"
    return "wasserstein" if continuous else "jensenshannon"


__all__ = [
    "AUTO",
    "AUTO_CVM_MAX_VALUE_SHARE",
    "AUTO_CVM_NULL_MEAN_TOLERANCE",
    "AUTO_MAX_DISCRETE_UNIQUE",
    "AUTO_MAX_VALUE_CATEGORIES",
    "AUTO_SMALL_REFERENCE_ROWS",
    "AUTO_TIED_UNIQUE_SHARE",
    "CORRECTIONS",
    "AnyMethod",
    "CategoricalMethod",
    "DriftMethod",
    "DriftResult",
    "NumericMethod",
    "UnknownMethodError",
    "adjusted_p_values",
    "anderson",
    "auto_method",
    "contingency",
    "cvm",
    "cvm_fits_ties",
    "cvm_null_mean_ratio",
    "distance",
    "divergence",
    "edf",
    "get_method",
    "is_tied",
    "ks",
    "largest_value_share",
    "method_names",
    "methods",
    "register",
]
