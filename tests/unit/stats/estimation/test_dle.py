"""DLE against known ground truth: a regression model that knows the mean but not the noise,
whose noise grows with one feature; covariate shift moves rows into the noisy region, and a
concept shift that estimation cannot see."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from modelmon.stats.estimation import (
    REGRESSION_METRICS,
    RegressionEstimator,
    fit_regression_estimator,
)

Data = tuple[pd.DataFrame, NDArray[np.float64], NDArray[np.float64]]


def _data(rng: np.random.Generator, rows: int, centre: float, concept: float = 0.0) -> Data:
    """Features, the model's prediction and the labels; the noise's scale is 0.3 + |x1|."""
    x1, x2 = rng.normal(centre, 1.0, rows), rng.normal(0.0, 1.0, rows)
    kind = rng.choice(np.array(["a", "b", "c"]), rows)
    prediction = 2.0 * x1 + x2 + (kind == "a")
    noise = rng.normal(0.0, 1.0, rows) * (0.3 + np.abs(x1)) * np.where(kind == "c", 1.5, 1.0)
    labels = prediction + noise + concept * x2
    return pd.DataFrame({"x1": x1, "x2": x2, "kind": kind}), prediction, labels


def _realized(prediction: NDArray[np.float64], labels: NDArray[np.float64]) -> dict[str, float]:
    error = labels - prediction
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}


@pytest.fixture(scope="module")
def estimator() -> RegressionEstimator:
    return fit_regression_estimator(*_data(np.random.default_rng(20), 10_000, 0.0))


@pytest.mark.parametrize("centre", [0.0, 0.75, 1.5])
def test_estimates_track_the_realized_losses(estimator: RegressionEstimator,
                                             centre: float) -> None:
    # Windows of 2,000 rows: the realized mae's standard error is under 2% of it (rmse's
    # near 3% with the heavier tail); averaged over 4 windows about 1.5%, so 8% leaves
    # room for the loss models' error and fails an estimate that stays at the reference's level
    # (the shifted windows' losses are about 25% and 70% higher). Farther out (centre 2,
    # where a third of the rows lie beyond nearly all of the reference) only the linear
    # trend extrapolates: mae about 6% high, rmse 1% low; docs/estimation.md says so.
    rng = np.random.default_rng(21)
    estimated: dict[str, list[float]] = {"mae": [], "rmse": []}
    realized: dict[str, list[float]] = {"mae": [], "rmse": []}
    for _ in range(4):
        features, prediction, labels = _data(rng, 2_000, centre)
        for name, got in estimator.estimate(features, prediction).items():
            estimated[name].append(got.value)
        for name, value in _realized(prediction, labels).items():
            realized[name].append(value)
    for name in ("mae", "rmse"):
        relative = np.mean(estimated[name]) / np.mean(realized[name]) - 1.0
        assert abs(relative) < 0.08, (centre, name, relative)


def test_the_estimate_rises_as_rows_move_into_the_noise(estimator: RegressionEstimator) -> None:
    rng = np.random.default_rng(22)
    mae = [estimator.estimate(*_data(rng, 2_000, centre)[:2])["mae"].value
           for centre in (0.0, 1.0, 2.0)]
    assert mae[0] * 1.2 < mae[1] < mae[2] / 1.2


def test_bands_hold_the_realized_losses_in_most_windows(estimator: RegressionEstimator) -> None:
    rng = np.random.default_rng(23)
    held = {"mae": 0, "rmse": 0}
    for _ in range(40):
        features, prediction, labels = _data(rng, 500, 0.5)
        estimated = estimator.estimate(features, prediction)
        for name, value in _realized(prediction, labels).items():
            held[name] += estimated[name].lower <= value <= estimated[name].upper
    assert min(held.values()) >= 36, held


def test_concept_shift_is_invisible_to_the_estimate(estimator: RegressionEstimator) -> None:
    # The limit of DLE: labels gain a term the model never saw, the inputs look as on the
    # reference, so the estimate stays while the losses grow. Asserted as wrong.
    features, prediction, labels = _data(np.random.default_rng(24), 2_000, 0.0, concept=2.0)
    estimated = estimator.estimate(features, prediction)
    realized = _realized(prediction, labels)
    for name in ("mae", "rmse"):
        assert realized[name] > 1.5 * estimated[name].value
        assert realized[name] > estimated[name].upper


def test_unseen_categories_and_missing_features_are_scored(
        estimator: RegressionEstimator) -> None:
    features, prediction, _ = _data(np.random.default_rng(25), 500, 0.0)
    features.loc[:100, "kind"] = "never seen"
    features.loc[100:200, "x2"] = np.nan
    got = estimator.estimate(features, prediction)
    assert set(got) == set(REGRESSION_METRICS)
    assert all(np.isfinite(e.value) and e.value > 0 for e in got.values())


def test_same_inputs_give_the_same_estimates() -> None:
    rng = np.random.default_rng(26)
    reference = _data(rng, 2_000, 0.0)
    window = _data(rng, 500, 1.0)[:2]
    first = fit_regression_estimator(*reference).estimate(*window)
    assert fit_regression_estimator(*reference).estimate(*window) == first


def test_the_trend_carries_the_loss_beyond_the_reference(estimator: RegressionEstimator) -> None:
    """Trees alone stay flat past the reference's edge; the linear trend under them keeps the
    estimate rising with the noise (which grows with |x1|) as rows move past it."""
    rng = np.random.default_rng(24)
    ends = [estimator.estimate(*_data(rng, 2_000, centre)[:2])["mae"].value
            for centre in (2.5, 3.5, 4.5)]
    assert ends[0] * 1.15 < ends[1] < ends[2] / 1.15


def test_an_absurd_input_cannot_drive_the_trend(estimator: RegressionEstimator) -> None:
    """Inputs are clipped to the reference's range widened by its width on each side, so a
    broken feature (1e12) gives the estimate of that limit, not a runaway."""
    features, prediction, _ = _data(np.random.default_rng(25), 500, 0.0)
    limit = float(estimator.trend.high[0])
    at_limit = estimator.estimate(features.assign(x1=limit), prediction)["mae"].value
    absurd = estimator.estimate(features.assign(x1=1e12), prediction)["mae"].value
    assert absurd == pytest.approx(at_limit, rel=1e-12)
    assert np.isfinite(absurd) and absurd < 50.0
