"""With no drift, the tests flag about alpha of the time; the goodness-of-fit trap does not.

Seeds are fixed, so the rates are deterministic; the bounds are wide enough (about three
binomial standard deviations around 0.05) to survive any reasonable seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelmon.stats.drift import get_method
from modelmon.stats.profile import CategoricalProfile, fit_numeric
from verdicts import drifted

ALPHA = 0.05
REPEATS = 200
PROBS = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
CATEGORIES = tuple("abcde")


def counts_profile(counts: np.ndarray) -> CategoricalProfile:
    return CategoricalProfile(categories=CATEGORIES[: counts.size],
                              counts=counts.astype(np.int64), n_present=int(counts.sum()),
                              n_missing=0)


def test_ks_flags_about_alpha_without_drift() -> None:
    rng = np.random.default_rng(101)
    method = get_method("ks", "numeric")
    flagged = 0
    for _ in range(REPEATS):
        pooled = rng.gamma(2.0, size=1000)  # one dataset, split at random in two halves
        rng.shuffle(pooled)
        result = method.score(fit_numeric(pooled[:500]), pooled[500:])  # type: ignore[arg-type]
        flagged += drifted(result)
    assert 0.01 <= flagged / REPEATS <= 0.10


@pytest.mark.parametrize(("name", "probs"), [("chisquare", PROBS),
                                             ("ztest", np.array([0.7, 0.3]))])
def test_count_tests_flag_about_alpha_without_drift(name: str, probs: np.ndarray) -> None:
    rng = np.random.default_rng(202)
    method = get_method(name, "categorical")
    flagged = 0
    for _ in range(REPEATS):
        ref = counts_profile(rng.multinomial(500, probs))
        cur = counts_profile(rng.multinomial(500, probs))
        flagged += drifted(method.score(ref, cur))  # type: ignore[arg-type]
    assert 0.01 <= flagged / REPEATS <= 0.10


def goodness_of_fit_flags(ref: np.ndarray, cur: np.ndarray) -> bool:
    """The trap: the current counts tested against the reference's proportions as if those
    were the true ones (``scipy.stats.chisquare`` with expected = reference share * m)."""
    expected = ref / ref.sum() * cur.sum()
    return bool(stats.chisquare(cur, expected).pvalue < ALPHA)


@pytest.mark.parametrize(("n_ref", "n_cur", "trap_rate"), [
    (100_000, 1_000, None),       # current small: the trap is nearly harmless here
    (100_000, 100_000, 0.2),      # both large: the design's measurement
    (1_000, 100_000, 0.9),        # current much larger than the reference
])
def test_homogeneity_holds_alpha_where_goodness_of_fit_over_flags(
        n_ref: int, n_cur: int, trap_rate: float | None) -> None:
    """Five undrifted categorical columns, 200 checks each. Ours (homogeneity on the
    2 x k table) flags about alpha at every size; goodness-of-fit against the reference's
    proportions ignores the reference's own noise, inflating X^2 by about 1 + m/n."""
    rng = np.random.default_rng(303)
    method = get_method("chisquare", "categorical")
    ours = trap = 0
    trials = 0
    for _ in range(REPEATS):
        for column in range(5):
            probs = np.roll(PROBS, column)
            ref = rng.multinomial(n_ref, probs)
            cur = rng.multinomial(n_cur, probs)
            ours += drifted(method.score(counts_profile(ref), counts_profile(cur)))  # type: ignore[arg-type]
            trap += goodness_of_fit_flags(ref, cur)
            trials += 1
    assert 0.02 <= ours / trials <= 0.08
    if trap_rate is not None:
        assert trap / trials > trap_rate
