"""Small examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelmon.stats.drift import divergence, get_method
from modelmon.stats.drift.divergence import EMPTY_CELL
from modelmon.stats.profile import CategoricalProfile, fit_numeric
from verdicts import drifted


def cats(**counts: int) -> CategoricalProfile:
    names = tuple(counts)
    values = np.array([counts[c] for c in names], dtype=np.int64)
    return CategoricalProfile(categories=names, counts=values, n_present=int(values.sum()),
                              n_missing=0)


def stat(name: str, ref: CategoricalProfile, cur: CategoricalProfile) -> float:
    result = get_method(name, "categorical").score(ref, cur)  # type: ignore[arg-type]
    assert result.statistic is not None
    return result.statistic


def test_psi() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3
    assert stat("psi", cats(a=50, b=50), cats(a=25, b=75)) == pytest.approx(0.25 * math.log(3))
    # A category missing from the reference counts as EMPTY_CELL there.
    want = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - EMPTY_CELL) * math.log(0.5 / EMPTY_CELL)
    assert stat("psi", cats(a=10), cats(a=5, b=5)) == pytest.approx(want)
    assert stat("psi", cats(a=3, b=7), cats(a=30, b=70)) == 0.0


def test_numeric_psi_on_deciles() -> None:
    profile = fit_numeric(np.arange(1000, dtype=np.float64))
    assert profile.bin_counts.tolist() == [100] * 10
    # Every current value in the first decile: 0.9 ln 10 + 9 (1e-4 - 0.1) ln(1e-4 / 0.1).
    result = get_method("psi", "numeric").score(profile, np.zeros(50))  # type: ignore[arg-type]
    want = 0.9 * math.log(10) + 9 * (EMPTY_CELL - 0.1) * math.log(EMPTY_CELL / 0.1)
    assert result.statistic == pytest.approx(want)
    assert drifted(result)


def test_tvd() -> None:
    # half of |0.5-0.2| + |0.3-0.3| + |0.2-0.5|
    assert stat("tvd", cats(a=5, b=3, c=2), cats(a=2, b=3, c=5)) == pytest.approx(0.3)
    assert stat("tvd", cats(a=1), cats(b=1)) == pytest.approx(1.0)


def test_hellinger() -> None:
    assert stat("hellinger", cats(a=1), cats(b=4)) == pytest.approx(1.0)
    # 1 - sum sqrt(p q) = 1 - sqrt(0.5) ; H = sqrt of that
    assert stat("hellinger", cats(a=5, b=5), cats(a=9)) == pytest.approx(
        math.sqrt(1 - math.sqrt(0.5)))


def test_numeric_hellinger_on_deciles() -> None:
    profile = fit_numeric(np.arange(1000, dtype=np.float64))
    method = get_method("hellinger", "numeric")
    # Half the window in each of the first two deciles: sum sqrt(p q) = 2 sqrt(0.1 * 0.5)
    # = sqrt(0.2), and H = sqrt(1 - sum sqrt(p q)) = sqrt(1 - sqrt(0.2)) ~ 0.7435.
    current = np.repeat([50.0, 150.0], 40)
    result = method.score(profile, current)  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(math.sqrt(1 - math.sqrt(0.2)))
    assert result.p_value is None
    assert drifted(result)
    # Deciles 0.2, 0.1 x 8, 0 against 0.1 each: sum sqrt(p q) = sqrt(0.02) + 0.8 (the empty
    # bin adds nothing: no smoothing here), H = sqrt(1 - 0.8 - sqrt(0.02)) ~ 0.2420.
    shifted = np.repeat(np.arange(0, 1000, 100, dtype=np.float64), [20] + [10] * 8 + [0])
    result = method.score(profile, shifted)  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(math.sqrt(0.2 - math.sqrt(0.02)))
    # The reference itself, in any order: every bin matches, H = 0.
    same = method.score(profile, np.arange(999, -1, -1, dtype=np.float64))  # type: ignore[arg-type]
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    assert not drifted(same)


def test_kl() -> None:
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    assert divergence.kl_divergence(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(
        0.5 * math.log(4 / 3))
    profile = fit_numeric(np.arange(1000, dtype=np.float64))
    current = np.repeat(np.arange(0, 1000, 100, dtype=np.float64), [200] + [100] * 8 + [0])
    # Reference deciles 0.1 each; current 0.2, 0.1 x 8, 0 (smoothed to 1e-4, renormalised).
    q = np.array([0.2] + [0.1] * 8 + [EMPTY_CELL])
    q /= q.sum()
    want = float(np.sum(0.1 * np.log(0.1 / q)))
    result = get_method("kl", "numeric").score(profile, current)  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(want)


def test_jensenshannon() -> None:
    assert stat("jensenshannon", cats(a=3), cats(b=3)) == pytest.approx(math.sqrt(math.log(2)))
    assert stat("jensenshannon", cats(a=3, b=1), cats(a=30, b=10)) == pytest.approx(0.0)


def test_ztest() -> None:
    # 60/100 vs 40/100: pooled 0.5, se = sqrt(0.25 * 0.02), z = 0.2 / se = 2 sqrt 2,
    # p = 2 (1 - Phi(2 sqrt 2)) = erfc(2).
    result = get_method("ztest", "categorical").score(
        cats(a=60, b=40), cats(a=40, b=60))  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(2 * math.sqrt(2))
    assert result.p_value == pytest.approx(math.erfc(2.0))
    assert drifted(result)


def test_ztest_refuses_more_than_two_categories() -> None:
    result = get_method("ztest", "categorical").score(
        cats(a=60, b=40), cats(a=40, b=50, c=10))  # type: ignore[arg-type]
    assert result.statistic is None
    assert not drifted(result)
    assert result.message is not None
    assert "chisquare" in result.message


def test_chisquare_is_homogeneity_not_goodness_of_fit() -> None:
    # 2 x 2 table [[60, 40], [40, 60]]: expected 50 everywhere, X^2 = 4 * 100 / 50 = 8,
    # the square of the z above.
    result = get_method("chisquare", "categorical").score(
        cats(a=60, b=40), cats(a=40, b=60))  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(8.0)
    assert result.p_value == pytest.approx(math.erfc(2.0))


def test_ks_and_wasserstein() -> None:
    profile = fit_numeric(np.array([1.0, 2.0, 3.0]))
    ks = get_method("ks", "numeric").score(profile, np.array([4.0, 5.0, 6.0]))  # type: ignore[arg-type]
    assert ks.statistic == 1.0
    assert ks.p_value == pytest.approx(2 / math.comb(6, 3))  # exact: 2 of 20 orderings
    reference = np.array([0.0, 1.0, 2.0, 3.0])
    profile = fit_numeric(reference)
    moved = get_method("wasserstein", "numeric").score(profile, reference + 1)  # type: ignore[arg-type]
    assert moved.statistic == pytest.approx(1 / math.sqrt(1.25))


def test_wasserstein_constant_reference_is_not_normalised() -> None:
    profile = fit_numeric(np.full(20, 5.0))
    result = get_method("wasserstein", "numeric").score(profile, np.full(10, 5.5))  # type: ignore[arg-type]
    assert result.statistic == pytest.approx(0.5)
    assert drifted(result)
    assert result.message is not None
    assert "not normalised" in result.message
