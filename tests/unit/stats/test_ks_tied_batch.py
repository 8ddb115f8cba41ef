"""The tied KS p-values of many columns at once (``ties.ks_tied_pvalues``, the walks with
short runs stepped together) are those of the run-by-run walk one column at a time, and
a window's drift (``score_window``, which defers them to ``drift.base.settle``) is the
one ``score`` gives column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import ColumnRequest, fit_reference, score_window
from modelmon.stats.drift import get_method, ks, ties
from modelmon.stats.drift.ks import ks_statistic


def _sample(rng: np.random.Generator, size: int, pattern: str, shift: float) -> np.ndarray:
    if pattern == "integers":
        return rng.integers(0, 6, size).astype(float) + (rng.random(size) < shift)
    if pattern == "rounded":
        return np.round(rng.normal(shift, 1.0, size), 1)
    if pattern == "few-ties":
        return np.round(rng.normal(shift, 1.0, size), 3)
    return rng.normal(shift, 1.0, size)


def _problem(rng: np.random.Generator, n: int, m: int, pattern: str, shift: float
             ) -> tuple[float, int, int, np.ndarray]:
    ref, cur = np.sort(_sample(rng, n, pattern, 0.0)), np.sort(_sample(rng, m, pattern, shift))
    runs = ties.pooled_runs(np.sort(np.concatenate((ref, cur))))
    return ks_statistic(ref, cur), n, m, runs


def _one_by_one(distance: float, n: int, m: int, runs: np.ndarray) -> float:
    """The run-by-run walk of one column (``_walk_runs``), whatever its runs."""
    n_walk, m_walk, walk_runs, reach = ties._ks_walk(distance, n, m, runs)
    return min(max(1.0 - ties._walk_runs(n_walk, m_walk, walk_runs, reach), 0.0), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_columns_walked_together_give_each_columns_p_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    problems = [_problem(rng, n, m, pattern, shift)
                for n, m in [(1, 3), (7, 5), (200, 199), (200, 199), (200, 141), (2500, 2000)]
                for pattern in ("integers", "rounded", "few-ties", "continuous")
                for shift in (0.0, 0.15, 0.4)]
    want = [_one_by_one(*problem) for problem in problems]
    together = ties.ks_tied_pvalues(*zip(*problems, strict=True))
    alone = [ties.ks_tied_pvalue(*problem) for problem in problems]
    assert np.max(np.abs(np.subtract(together, want))) <= 1e-12
    assert np.max(np.abs(np.subtract(alone, want))) <= 1e-12
    stepped = [ties._stepwise(*ties._ks_walk(*problem)) for problem in problems]
    assert any(stepped) and not all(stepped)  # both walks were taken


def test_scaled_walks_together_give_each_columns_p_value() -> None:
    """Above ``KS_TIED_EXACT_MAX_N`` a side the scaled copies are walked together too."""
    rng = np.random.default_rng(7)
    problems = [_problem(rng, 12_000, 11_000, pattern, shift)
                for pattern in ("few-ties", "continuous") for shift in (0.0, 0.03)]
    walks = [ties._ks_walk(*problem) for problem in problems]
    assert all(walk[0] == ties.KS_TIED_SCALED_N and ties._stepwise(*walk) for walk in walks)
    want = [_one_by_one(*problem) for problem in problems]
    together = ties.ks_tied_pvalues(*zip(*problems, strict=True))
    assert np.max(np.abs(np.subtract(together, want))) <= 1e-12


def test_a_windows_drift_is_each_columns_score() -> None:
    rng = np.random.default_rng(11)
    n, m = 400, 300
    def tied(rows: int, shift: float, counts: float) -> pd.DataFrame:
        return pd.DataFrame({
            "counts": rng.poisson(counts, rows).astype(float),
            "tenths": np.round(rng.normal(shift / 2, 1.0, rows), 1),
            "thousandths": np.round(rng.normal(0.0, 1.0, rows), 3),
            "shifted": np.round(rng.normal(shift * 1.5, 1.0, rows), 2),
            "plain": rng.normal(shift, 1.0, rows)})

    reference, current = tied(n, 0.0, 3.0), tied(m, 0.2, 3.3)
    current.loc[:20, "tenths"] = np.nan  # a size of its own
    profile = fit_reference(reference, [ColumnRequest(name, method="ks")
                                        for name in reference.columns])
    drift = score_window(profile, current).drift
    method = get_method("ks", "numeric")
    assert isinstance(method, ks.KolmogorovSmirnov)
    for column in drift:
        fitted = profile.columns[column.name].numeric
        assert fitted is not None
        assert column.result == method.score(fitted, current[column.name].to_numpy()), column
    assert sum("tied values" in (column.result.message or "") for column in drift) >= 3
