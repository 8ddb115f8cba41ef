"""The tests on empirical distribution functions under their former common module name.

Kolmogorov-Smirnov, Cramer-von Mises and Anderson-Darling each live in a module of their
own (``ks``, ``cvm``, ``anderson``); this module re-exports their public names so that
``modelmon.stats.drift.edf`` keeps working for the code that imports it.
"""

from __future__ import annotations

from modelmon.stats.drift.anderson import (
    ANDERSON_CRITICAL,
    ANDERSON_LEVELS,
    ANDERSON_P_CAP,
    ANDERSON_P_FLOOR,
    AndersonDarling,
    anderson_midrank,
    anderson_pvalue,
    anderson_standardised,
)
from modelmon.stats.drift.cvm import (
    CVM_EXACT_MAX_N,
    CramerVonMises,
    cvm_asymptotic_pvalue,
    cvm_exact_pvalue,
    cvm_from_rank_statistic,
    cvm_limit_cdf,
    cvm_rank_statistic,
    cvm_statistic,
)
from modelmon.stats.drift.ks import (
    KS_EXACT_MAX_N,
    KS_SPLIT,
    SMIRNOV_EXACT_MAX_N,
    SMIRNOV_POINTS,
    KolmogorovSmirnov,
    ks_asymptotic_pvalue,
    ks_exact,
    ks_statistic,
    pelz_good_cdf,
    smirnov_sf,
)

__all__ = [
    "ANDERSON_CRITICAL",
    "ANDERSON_LEVELS",
    "ANDERSON_P_CAP",
    "ANDERSON_P_FLOOR",
    "CVM_EXACT_MAX_N",
    "KS_EXACT_MAX_N",
    "KS_SPLIT",
    "SMIRNOV_EXACT_MAX_N",
    "SMIRNOV_POINTS",
    "AndersonDarling",
    "CramerVonMises",
    "KolmogorovSmirnov",
    "anderson_midrank",
    "anderson_pvalue",
    "anderson_standardised",
    "cvm_asymptotic_pvalue",
    "cvm_exact_pvalue",
    "cvm_from_rank_statistic",
    "cvm_limit_cdf",
    "cvm_rank_statistic",
    "cvm_statistic",
    "ks_asymptotic_pvalue",
    "ks_exact",
    "ks_statistic",
    "pelz_good_cdf",
    "smirnov_sf",
]
