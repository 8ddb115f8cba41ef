"""KS p-values against scipy over wide grids of sample sizes and distances.

Accuracy cross-checks rather than unit tests: scipy, the reference here, takes up to a
second per point at these sizes (``kstwo.sf`` with N in the millions), so they run with
``make test`` and in CI, not in ``make test-unit``. The quick agreement tests of the same
functions stay in ``tests/unit/stats/test_drift_scipy_twins.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import special, stats

from modelmon.stats.drift import edf

TOL = 1e-9


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("n", [141, 2_500, 60_000, 400_000])
def test_smirnov_series_matches_scipy(n: int) -> None:
    """The one-sided series summed on ``SMIRNOV_POINTS`` terms equals scipy's full sum,
    without a warning where ``n * (1 - x)`` is an integer up to rounding (n = 2500,
    x = 0.18: the last base is positive only by rounding)."""
    for z in (1.49, 2.0, 3.0, 5.0, 9.0, 15.0):
        x = z / math.sqrt(n)
        if x >= 1:
            continue
        want = float(special.smirnov(n, x))
        assert abs(edf.smirnov_sf(n, x) - want) <= 1e-9 * want, (n, x)


def _pairs() -> Iterator[tuple[int, int]]:
    for n in (10_001, 12_000, 60_000, 100_000, 400_000, 1_000_000, 3_000_000):
        for ratio in (1.0, 0.3, 3.0):
            yield n, max(1, round(n * ratio))
    yield 141, 1_000_000  # N just above the small-N formulas


@pytest.mark.parametrize(("n", "m"), list(_pairs()))
def test_ks_asymptotic_pvalue_matches_kstwo_on_a_wide_grid(n: int, m: int) -> None:
    """Every formula region of ``kstwo.sf`` (N*D^2 from 1e-4 to 400, D up to 0.9): ours
    within 1e-9 absolute of scipy's, which ``ks_2samp`` returns for these sizes."""
    en = round(n * m / (n + m))
    zs = np.concatenate([np.geomspace(1e-2, 1.48, 12), np.linspace(1.49, 20, 14)])
    ds = np.concatenate([zs / math.sqrt(en), [0.3, 0.49, 0.51, 0.9]])
    for d in ds[ds < 1]:
        ours = edf.ks_asymptotic_pvalue(float(d), n, m)
        want = float(np.clip(stats.kstwo.sf(d, float(en)), 0, 1))
        assert abs(ours - want) <= TOL, (n, m, d, ours, want)
