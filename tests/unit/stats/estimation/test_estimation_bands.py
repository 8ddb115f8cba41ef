"""Error bands: the spread of a metric over reference samples of the window's size, kept per
window size, and bands that hold the realized metric when only chance moves it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn import metrics as skm

from modelmon.stats.estimation import BAND_WIDTH, fit_classifier_estimator
from modelmon.stats.estimation.bands import CHUNK_ROWS_CAP, CHUNKS, KEPT_SIZES, SamplingBands


class _Counting:
    """The mean of a fixed sample, counting how many reference samples it scored."""

    def __init__(self) -> None:
        self.values = np.random.default_rng(0).normal(size=5_000)
        self.calls = 0

    def __call__(self, rows: NDArray[np.intp]) -> dict[str, float]:
        self.calls += 1
        return {"mean": float(self.values[rows].mean())}


def test_a_steady_window_size_is_sampled_once() -> None:
    realized = _Counting()
    bands = SamplingBands(realized, 5_000, (-math.inf, math.inf))
    first = bands.spreads(400)
    assert realized.calls == CHUNKS
    assert bands.spreads(400) == first
    assert realized.calls == CHUNKS


def test_the_kept_sizes_are_bounded() -> None:
    realized = _Counting()
    bands = SamplingBands(realized, 5_000, (-math.inf, math.inf))
    for size in range(100, 100 + 50 * (KEPT_SIZES + 3), 50):
        bands.spreads(size)
    bands.spreads(100)  # dropped long ago: sampled again
    assert realized.calls == CHUNKS * (KEPT_SIZES + 4)


def test_the_spread_falls_with_the_root_of_the_window_size() -> None:
    realized = _Counting()
    bands = SamplingBands(realized, 5_000, (-math.inf, math.inf))
    sd = float(np.std(realized.values))
    for size in (100, 400, 1_600):
        # A mean of `size` draws strays by sd / sqrt(size); a spread from 50 samples is
        # itself known to about 10%, so 30% is three of its standard errors.
        assert bands.spreads(size)["mean"] * math.sqrt(size) == pytest.approx(sd, rel=0.3)
    # Beyond the cap the spread measured at the cap is scaled, not sampled again.
    capped = bands.spreads(CHUNK_ROWS_CAP)["mean"]
    assert bands.spreads(4 * CHUNK_ROWS_CAP)["mean"] == pytest.approx(capped / 2, rel=1e-12)


def test_the_band_is_three_spreads_clipped_to_the_range() -> None:
    bands = SamplingBands(_Counting(), 5_000, (-0.01, 0.01))
    spread = bands.spreads(200)["mean"]
    wide = bands.bands({"mean": 0.0}, 200)["mean"]
    assert (wide.lower, wide.upper) == (-0.01, 0.01)
    free = SamplingBands(_Counting(), 5_000, (-math.inf, math.inf)).bands({"mean": 0.0}, 200)
    assert free["mean"].upper == pytest.approx(BAND_WIDTH * spread, rel=1e-12)
    assert free["mean"].lower == pytest.approx(-BAND_WIDTH * spread, rel=1e-12)


def test_a_metric_no_sample_defines_gets_the_whole_range() -> None:
    bands = SamplingBands(lambda rows: {"rate": math.nan}, 1_000, (0.0, 1.0))
    assert bands.bands({"rate": 0.4}, 50)["rate"].lower == 0.0
    assert bands.bands({"rate": 0.4}, 50)["rate"].upper == 1.0


def _binary(rng: np.random.Generator, rows: int,
            spread: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    logit = 1.5 * rng.normal(0.0, spread, rows) - 0.8 * rng.normal(0.0, 1.0, rows)
    labels = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    return 1.0 / (1.0 + np.exp(-1.8 * logit)), labels


@pytest.mark.parametrize("spread", [1.5, 0.5])
def test_bands_hold_the_realized_metric_in_most_windows(spread: float) -> None:
    # Only the inputs shift (spread 0.5 crowds the rows at the boundary), so the realized
    # metric differs from the estimate by chance; three spreads should hold it in nearly
    # every window, and at least 36 of 40 is asked.
    rng = np.random.default_rng(12)
    estimator = fit_classifier_estimator(*_binary(rng, 20_000, 1.5), (False, True))
    held = dict.fromkeys(("accuracy", "f1", "rocAuc"), 0)
    for _ in range(40):
        scores, labels = _binary(rng, 1_000, spread)
        estimated = estimator.estimate(scores)
        realized = {"accuracy": skm.accuracy_score(labels, scores >= 0.5),
                    "f1": skm.f1_score(labels, scores >= 0.5),
                    "rocAuc": skm.roc_auc_score(labels, scores)}
        for name, value in realized.items():
            held[name] += estimated[name].lower <= value <= estimated[name].upper
            assert estimated[name].lower < estimated[name].value < estimated[name].upper
    assert min(held.values()) >= 36, held


def test_bands_narrow_as_windows_grow() -> None:
    rng = np.random.default_rng(13)
    estimator = fit_classifier_estimator(*_binary(rng, 20_000, 1.5), (False, True))
    small = estimator.estimate(_binary(rng, 500, 1.5)[0])["accuracy"]
    large = estimator.estimate(_binary(rng, 8_000, 1.5)[0])["accuracy"]
    assert (large.upper - large.lower) < 0.5 * (small.upper - small.lower)
