"""Drift methods: the registry, every method, and the ``auto`` rule.

Part of ``stats`` (pure numpy/scipy), between the fitted reference profiles and
``evaluation``. Importing this package registers every method: one module per test on the
empirical CDFs (``ks``, ``cvm``, ``anderson``; ``edf`` re-exports the three under their
former common name), and one per family of the others (``distance`` for the CDF distances,
``divergence`` for the histogram divergences, ``contingency`` for the count-table tests).
"""

from __future__ import annotations

from modelmon.stats.drift import (
    anderson,
    contingency,
    cvm,
    distance,
    divergence,
    edf,
    ks,
    ties,
)
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
from modelmon.stats.profile import FeatureKind

#: ``auto`` uses the tests up to this many reference rows and the distances above it.
AUTO_SMALL_REFERENCE_ROWS = 1000

#: ``auto`` treats a numeric column with at most this many distinct reference values as
#: categorical.
AUTO_MAX_DISCRETE_UNIQUE = 5

AUTO = "auto"


def auto_method(kind: FeatureKind, reference_rows: int, n_unique: int) -> str:
    """The method name the ``auto`` rule picks for a column: Evidently's published rule.

    Up to 1000 reference rows: ``ks`` for a numeric column with more than 5 distinct
    values, else ``ztest`` when there are exactly two categories and ``chisquare``
    otherwise. Above 1000 rows: ``wasserstein`` (normed) for a numeric column with more
    than 5 distinct values, otherwise ``jensenshannon`` on categories. Tied numeric data
    (counts, integers, rounded values) stays on ``ks``: its p-value there is the
    permutation one given the pooled values (``ties.ks_tied_pvalue``), which holds alpha
    where the continuous one was conservative.

    Only the name is returned. Whenever the name is a categorical method for a numeric
    column, the caller must score the column as categorical: look the method up with
    ``kind="categorical"`` and profile both sides with ``fit_categorical``.
    """
    continuous = kind == "numeric" and n_unique > AUTO_MAX_DISCRETE_UNIQUE
    if reference_rows <= AUTO_SMALL_REFERENCE_ROWS:
        if continuous:
            return "ks"
        return "ztest" if n_unique == 2 else "chisquare"
    return "wasserstein" if continuous else "jensenshannon"


__all__ = [
    "AUTO",
    "AUTO_MAX_DISCRETE_UNIQUE",
    "AUTO_SMALL_REFERENCE_ROWS",
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
    "distance",
    "divergence",
    "edf",
    "get_method",
    "ks",
    "method_names",
    "methods",
    "register",
    "ties",
]
