"""``auto`` and the tie-aware tests hold their false-alarm rate at alpha on discrete numeric
columns as on continuous ones.

Thousands of null splits per shape (both sides drawn from one distribution: counts,
integers, rounded measurements, counts piled up at 0, half zeros with a continuous tail,
and continuous data as the control), each column fitted and scored the way a check does
(``fit_column``, ``score_column``). The share whose p-value is below 0.05 must lie in
[0.03, 0.07] (alpha with about four binomial standard deviations either side at 2000
splits). Seeds are fixed, so the rates are deterministic. Too slow for
``make test-unit``; runs with ``make test`` and in CI. ``make calibration`` measures the
whole grid (every p-value method, more shapes, power against Evidently) into
``benchmarks/CALIBRATION.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import ColumnRequest, fit_column, score_column

LOW, HIGH = 0.03, 0.07

Draw = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, Draw] = {
    "poisson-3": lambda r, n: r.poisson(3.0, n).astype(float),
    "poisson-20": lambda r, n: r.poisson(20.0, n).astype(float),
    "uniform-0-9": lambda r, n: r.integers(0, 10, n).astype(float),
    "uniform-0-30": lambda r, n: r.integers(0, 31, n).astype(float),
    "normal-1-decimal": lambda r, n: np.round(r.normal(0.0, 1.0, n), 1),
    "normal-integers": lambda r, n: np.round(r.normal(0.0, 3.0, n)),
    "mostly-zero": lambda r, n: r.choice(8, n, p=[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02,
                                                  0.01]).astype(float),
    "geometric": lambda r, n: r.geometric(0.3, n).astype(float),
    "negative-binomial": lambda r, n: r.negative_binomial(2, 0.3, n).astype(float),
    "half-zeros": lambda r, n: np.where(r.random(n) < 0.5, 0.0, r.exponential(1.0, n)),
    "normal": lambda r, n: r.normal(0.0, 1.0, n),
}


def null_rate(draw: Draw, method: str, n_ref: int, n_cur: int, splits: int, seed: int
              ) -> tuple[float, Counter[str]]:
    """The share of undrifted splits whose p-value is below 0.05, and the methods used."""
    rng = np.random.default_rng(seed)
    flagged = 0
    picked: Counter[str] = Counter()
    request = ColumnRequest("x", method=method)
    for _ in range(splits):
        profile = fit_column(pd.Series(draw(rng, n_ref)), request, n_ref)
        picked[profile.method] += 1
        result = score_column(profile, pd.Series(draw(rng, n_cur)))
        flagged += result.p_value is not None and result.p_value < 0.05
    return flagged / splits, picked


@pytest.mark.parametrize(("n_ref", "n_cur"), [(200, 200), (1000, 1000), (1000, 200)])
@pytest.mark.parametrize("shape", SHAPES)
def test_auto_false_alarm_rate_is_alpha_without_drift(shape: str, n_ref: int,
                                                      n_cur: int) -> None:
    rate, picked = null_rate(SHAPES[shape], "auto", n_ref, n_cur, 2000, seed=n_ref * 7 + n_cur)
    # Evidently's rule: every shape has more than 5 values, so ks (tie-aware) at these sizes.
    assert set(picked) == {"ks"}, picked
    assert LOW <= rate <= HIGH, (shape, n_ref, n_cur, rate)


@pytest.mark.parametrize("method", ["cvm", "anderson"])
@pytest.mark.parametrize("shape", ["poisson-3", "normal-1-decimal", "geometric", "half-zeros",
                                   "normal"])
def test_tie_aware_tests_hold_alpha_without_drift(method: str, shape: str) -> None:
    rate, _ = null_rate(SHAPES[shape], method, 300, 200, 2000, seed=17)
    assert LOW <= rate <= HIGH, (method, shape, rate)
