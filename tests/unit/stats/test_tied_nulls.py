"""The tied nulls of ks, cvm and anderson (``stats.drift.ties``): the KS walk is the
permutation distribution (enumerated on small samples, scipy's exact one without ties),
the quadratic forms reduce to the continuous limits without ties and agree with a
simulation, and the methods use them on tied data only. Their false-alarm rates are
measured in ``tests/accuracy/test_auto_calibration.py`` and ``make calibration``."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelmon.stats.dataset import ColumnRequest, fit_column, score_column
from modelmon.stats.drift import anderson, cvm, get_method, ties
from modelmon.stats.profile import fit_numeric


def _runs(*samples: np.ndarray) -> np.ndarray:
    return ties.pooled_runs(np.sort(np.concatenate(samples)))


def _ks_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(stats.ks_2samp(ref, cur).statistic)


@pytest.mark.parametrize(("n", "m"), [(3, 4), (20, 30), (200, 200), (1000, 300)])
def test_ks_walk_without_ties_is_scipys_exact_p_value(n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    for shift in (0.0, 0.2, 0.6):
        ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
        want = float(stats.ks_2samp(ref, cur, method="exact").pvalue)
        got = ties.ks_tied_pvalue(_ks_distance(ref, cur), n, m, _runs(ref, cur))
        assert abs(got - want) <= 1e-9, (shift, got, want)


def test_ks_walk_is_the_permutation_distribution_of_tied_samples() -> None:
    """Every split of 12 tied values into 6 and 6 (924 of them), counted."""
    rng = np.random.default_rng(3)
    for _ in range(4):
        pooled = rng.integers(0, 3, size=12).astype(float)
        ref, cur = pooled[:6], pooled[6:]
        observed = _ks_distance(ref, cur)
        splits = list(itertools.combinations(range(12), 6))
        at_least = 0
        for chosen in splits:
            mask = np.zeros(12, dtype=bool)
            mask[list(chosen)] = True
            at_least += _ks_distance(pooled[mask], pooled[~mask]) >= observed - 1e-12
        got = ties.ks_tied_pvalue(observed, 6, 6, _runs(ref, cur))
        assert got == pytest.approx(at_least / len(splits), abs=1e-12)


def test_ks_walk_on_unequal_tied_samples_matches_a_permutation_estimate() -> None:
    rng = np.random.default_rng(8)
    ref = rng.poisson(2.0, 60).astype(float)
    cur = rng.poisson(2.4, 25).astype(float)
    pooled = np.concatenate([ref, cur])
    observed = _ks_distance(ref, cur)
    draws = 4000
    hits = 0
    for _ in range(draws):
        shuffled = rng.permutation(pooled)
        hits += _ks_distance(shuffled[:60], shuffled[60:]) >= observed - 1e-12
    got = ties.ks_tied_pvalue(observed, 60, 25, _runs(ref, cur))
    assert abs(got - hits / draws) <= 4 * math.sqrt(got * (1 - got) / draws) + 1e-3


def test_ks_scaled_runs_approximate_the_exact_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact sizes the runs are scaled down: close to the exact walk."""
    rng = np.random.default_rng(4)
    ref = rng.poisson(3.0, 8000).astype(float)
    for shift in (3.0, 3.05, 3.1):
        cur = rng.poisson(shift, 8000).astype(float)
        runs, distance = _runs(ref, cur), _ks_distance(ref, cur)
        exact = ties.ks_tied_pvalue(distance, 8000, 8000, runs)
        monkeypatch.setattr(ties, "KS_TIED_EXACT_MAX_N", 1000)
        scaled = ties.ks_tied_pvalue(distance, 8000, 8000, runs)
        monkeypatch.undo()
        assert abs(scaled - exact) <= 0.01 + 0.05 * exact, (shift, scaled, exact)


def test_ks_tied_p_value_is_larger_than_nothing_and_below_the_untied_one() -> None:
    """Ties can only shrink the distance's null: the tied p-value is at most the untied."""
    rng = np.random.default_rng(9)
    for _ in range(20):
        ref = np.round(rng.normal(size=300), 1)
        cur = np.round(rng.normal(0.1, size=200), 1)
        distance = _ks_distance(ref, cur)
        untied = float(stats.ks_2samp(ref, cur, method="exact").pvalue)
        tied = ties.ks_tied_pvalue(distance, 300, 200, _runs(ref, cur))
        assert 0.0 < tied <= untied + 1e-12


def _limit_of(form: str, size: int = 1500) -> tuple[np.ndarray, float]:
    return ties.quadratic_form_weights(np.full(size, 1.0 / size), form)


def test_cvm_form_without_ties_is_the_cramer_von_mises_limit() -> None:
    weights, rest = _limit_of("cvm")
    top = np.sort(weights)[::-1][:5]
    assert top == pytest.approx(1.0 / (np.arange(1, 6) * math.pi) ** 2, rel=1e-3)
    assert weights.sum() + rest == pytest.approx(1.0 / 6.0, rel=1e-3)
    for value in (0.2, 0.4614, 0.7435, 1.2):
        want = 1.0 - cvm.cvm_limit_cdf(value)
        assert ties.weighted_chi2_sf(value, weights, rest) == pytest.approx(want, rel=0.05)


def test_anderson_form_without_ties_is_the_anderson_darling_limit() -> None:
    """Mean 1, and the limit's 5% and 1% points (2.492, 3.857)."""
    weights, rest = _limit_of("anderson")
    assert weights.sum() + rest == pytest.approx(1.0, rel=1e-6)
    assert ties.weighted_chi2_sf(2.492, weights, rest) == pytest.approx(0.05, rel=0.03)
    assert ties.weighted_chi2_sf(3.857, weights, rest) == pytest.approx(0.01, rel=0.06)


@pytest.mark.parametrize("weights", [[0.5], [0.3, 0.1], [0.2, 0.1, 0.05, 0.01]])
def test_weighted_chi2_tail_agrees_with_a_simulation(weights: list[float]) -> None:
    rng = np.random.default_rng(len(weights))
    array = np.array(weights)
    draws = (rng.chisquare(1, (400_000, array.size)) * array).sum(axis=1)
    for level in (0.5, 0.9, 0.95, 0.99):
        value = float(np.quantile(draws, level))
        assert ties.weighted_chi2_sf(value, array) == pytest.approx(1 - level, rel=0.06)


def test_weighted_chi2_tail_edges() -> None:
    assert ties.weighted_chi2_sf(0.0, np.array([0.2])) == 1.0
    assert ties.weighted_chi2_sf(0.1, np.array([]), 0.2) == 1.0
    assert ties.weighted_chi2_sf(0.3, np.array([]), 0.2) == 0.0
    mean = ties.weighted_chi2_sf(0.3, np.array([0.1, 0.2]))  # at the mean
    assert 0.3 < mean < 0.5
    assert ties.weighted_chi2_sf(40.0, np.array([0.5, 0.1])) < 1e-15


def test_many_values_use_the_largest_weights_and_the_rest_of_the_mean(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    shares = rng.random(480) + 0.1
    shares /= shares.sum()
    for form, value in (("cvm", 0.4), ("anderson", 2.3)):
        few, rest = ties.quadratic_form_weights(shares, form)
        assert few.size == ties.QUADRATIC_TOP_WEIGHTS and rest > 0
        monkeypatch.setattr(ties, "QUADRATIC_DENSE_MAX", 10_000)
        every, none_left = ties.quadratic_form_weights(shares, form)
        monkeypatch.undo()
        assert every.size == 479 and none_left == 0.0
        assert np.sort(few)[::-1] == pytest.approx(np.sort(every)[::-1][:few.size], rel=1e-6)
        assert ties.weighted_chi2_sf(value, few, rest) == pytest.approx(
            ties.weighted_chi2_sf(value, every), abs=2e-3)


def test_coarsened_runs_keep_the_total_and_bound_the_count() -> None:
    runs = np.ones(50_000, dtype=np.int64)
    runs[::7] = 3
    grouped = ties.coarsened(runs, points=1000)
    assert grouped.sum() == runs.sum()
    assert grouped.size <= 2 * 1000
    small = np.array([3, 1, 4], dtype=np.int64)
    assert ties.coarsened(small, points=1000) is small


def test_tied_null_only_where_ties_hold_a_share() -> None:
    rng = np.random.default_rng(2)
    continuous = rng.normal(size=2000)
    one_tie = continuous.copy()
    one_tie[1] = one_tie[0]
    counts = rng.poisson(3.0, 2000).astype(float)
    assert ties.tied_runs(fit_numeric(continuous), np.sort(rng.normal(size=500))) is None
    assert ties.tied_runs(fit_numeric(one_tie), np.sort(rng.normal(size=500))) is None
    runs = ties.tied_runs(fit_numeric(counts), np.sort(rng.poisson(3.0, 500).astype(float)))
    assert runs is not None and runs.sum() == 2500


@pytest.mark.parametrize("name", ["ks", "cvm", "anderson"])
def test_methods_take_the_tied_null_on_tied_data_and_say_so(name: str) -> None:
    rng = np.random.default_rng(12)
    ref = rng.poisson(3.0, 400).astype(float)
    cur = rng.poisson(3.0, 300).astype(float)
    method = get_method(name, "numeric")
    profile = method.fit(fit_numeric(ref))  # type: ignore[arg-type]
    result = method.score(profile, cur)  # type: ignore[arg-type]
    runs = _runs(ref, cur)
    assert result.statistic is not None
    if name == "ks":
        want = ties.ks_tied_pvalue(result.statistic, 400, 300, runs)
    elif name == "cvm":
        want = ties.quadratic_tied_pvalue(result.statistic, runs, "cvm")
    else:
        a2akn = anderson.anderson_midrank(np.sort(ref), np.sort(cur))
        want = ties.quadratic_tied_pvalue(a2akn * 700 / 699, runs, "anderson")
    assert result.p_value == pytest.approx(want, abs=1e-12)
    assert result.message is not None and "tied values" in result.message
    untied = method.score(method.fit(fit_numeric(rng.normal(size=400))),  # type: ignore[arg-type]
                          rng.normal(size=300))  # type: ignore[arg-type]
    assert untied.message is None or "tied" not in untied.message


@pytest.mark.parametrize("draw", [
    lambda r, n: r.poisson(3.0, n),
    lambda r, n: np.round(r.normal(size=n), 1),
    lambda r, n: r.geometric(0.3, n),
    lambda r, n: np.where(r.random(n) < 0.5, 0.0, r.exponential(size=n)),
    lambda r, n: r.choice(8, n, p=[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01]),
], ids=["counts", "rounded", "geometric", "half-zeros", "mostly-zero"])
def test_auto_keeps_ks_on_tied_numeric_columns(draw: object) -> None:
    """Evidently's rule unchanged: more than 5 distinct values go to ks, whose p-value
    is the tied one."""
    rng = np.random.default_rng(1)
    sample = draw(rng, 600).astype(float)  # type: ignore[operator]
    fitted = fit_column(pd.Series(sample), ColumnRequest("x"), 600)
    assert (fitted.kind, fitted.method, fitted.by_auto) == ("numeric", "ks", True)
    result = score_column(fitted, pd.Series(draw(rng, 300).astype(float)))  # type: ignore[operator]
    assert result.message is not None and "tied values" in result.message


def test_auto_scores_five_values_or_fewer_as_categories() -> None:
    values = np.resize(np.arange(5.0), 600)
    fitted = fit_column(pd.Series(values), ColumnRequest("x"), 600)
    assert (fitted.kind, fitted.method) == ("categorical", "chisquare")


def test_tied_references_above_the_small_size_keep_the_distances() -> None:
    values = np.resize(np.arange(10.0), 5000)
    fitted = fit_column(pd.Series(values), ColumnRequest("x"), values.size)
    assert (fitted.kind, fitted.method) == ("numeric", "wasserstein")


def test_tied_null_work_is_bounded_whatever_the_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """SECURITY.md, bounded resources: however many values and distinct values a window
    brings, the KS walk covers at most ``KS_TIED_EXACT_MAX_N`` values a side (a scaled copy
    beyond) and the quadratic forms at most about ``2 * QUADRATIC_MAX_POINTS`` groups, of
    which at most ``QUADRATIC_TOP_WEIGHTS`` weights are computed above the dense size."""
    walks: list[tuple[int, int, int]] = []
    forms: list[int] = []
    dense: list[int] = []
    walk, weights, generalised = (ties._inside_probability, ties.quadratic_form_weights,
                                  ties._generalised_weights)

    def record_walk(n_ref: int, n_cur: int, runs: np.ndarray, reach: float) -> float:
        walks.append((n_ref, n_cur, runs.size))
        return walk(n_ref, n_cur, runs, reach)

    def record_form(shares: np.ndarray, form: str) -> tuple[np.ndarray, float]:
        forms.append(shares.size)
        return weights(shares, form)

    def record_generalised(matrix: ties.Tridiagonal, precision: ties.Tridiagonal,
                           mean: float) -> tuple[np.ndarray, float]:
        found, rest = generalised(matrix, precision, mean)
        dense.append(found.size)
        return found, rest

    monkeypatch.setattr(ties, "_inside_probability", record_walk)
    monkeypatch.setattr(ties, "quadratic_form_weights", record_form)
    monkeypatch.setattr(ties, "_generalised_weights", record_generalised)
    rng = np.random.default_rng(21)
    ref = np.round(rng.gamma(2.0, 3.0, 150_000), 3)  # tens of thousands of distinct values
    cur = np.round(rng.gamma(2.0, 3.0, 120_000), 3)
    for name in ("ks", "cvm", "anderson"):
        method = get_method(name, "numeric")
        result = method.score(method.fit(fit_numeric(ref)), cur)  # type: ignore[arg-type]
        assert result.p_value is not None and "tied values" in (result.message or "")
    assert walks and all(n <= ties.KS_TIED_SCALED_N and m <= ties.KS_TIED_SCALED_N
                         and runs <= 2 * ties.KS_TIED_SCALED_N for n, m, runs in walks)
    assert forms and max(forms) <= 2 * ties.QUADRATIC_MAX_POINTS
    assert dense and max(dense) <= max(ties.QUADRATIC_DENSE_MAX, ties.QUADRATIC_TOP_WEIGHTS)
