"""Performance metrics from aggregates (pushdown) against the same metrics from the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats import performance as perf


def _binary(seed: int, size: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.random(size) < 0.3
    score = np.clip(rng.normal(np.where(truth, 0.65, 0.35), 0.2), 0, 1)
    if seed % 2:
        score[: size // 10] = np.round(score[: size // 10], 1)  # ties and exact 0 and 1
    frame = pd.DataFrame({"y": truth.astype(int), "p": score,
                          "yhat": (rng.random(size) < 0.5).astype(int)})
    frame.loc[rng.random(size) < 0.05, "y"] = None
    frame.loc[rng.random(size) < 0.05, "p"] = None
    return frame


SEEDS = [(seed, size) for seed in range(4) for size in (40, 3_000)]
BINARY = ["accuracy", "precision", "recall", "f1", "logLoss", "brier"]


def _equal(got: perf.Computed, want: perf.Computed) -> None:
    assert got.values.keys() == want.values.keys()
    for name, value in want.values.items():
        assert got.values[name] == pytest.approx(value, abs=1e-9, rel=1e-9), name
    assert got.missing.keys() == want.missing.keys()


@pytest.mark.parametrize(("seed", "size"), SEEDS)
@pytest.mark.parametrize("with_prediction", [True, False])
def test_binary_from_groups_equals_rows(seed: int, size: int, with_prediction: bool) -> None:
    frame = _binary(seed, size)
    prediction = "yhat" if with_prediction else None
    want = perf.compute(perf.BINARY, BINARY, frame, target="y", prediction=prediction,
                        probability="p")
    groups = perf.label_groups(perf.BINARY, frame, target="y", prediction=prediction,
                               probability="p")
    assert int(groups.counts.sum()) == len(frame[["y", "p", "yhat"]
                                                 if with_prediction else ["y", "p"]].dropna())
    _equal(perf.compute_from_groups(perf.BINARY, BINARY, groups), want)


def test_binary_scores_out_of_range_give_the_same_reason() -> None:
    frame = _binary(1, 200)
    frame.loc[3, "p"] = 1.5
    want = perf.compute(perf.BINARY, BINARY, frame, target="y", prediction="yhat",
                        probability="p")
    groups = perf.label_groups(perf.BINARY, frame, target="y", prediction="yhat",
                               probability="p")
    got = perf.compute_from_groups(perf.BINARY, BINARY, groups)
    _equal(got, want)
    assert got.missing["logLoss"] == want.missing["logLoss"]


def test_roc_auc_is_missing_with_a_reason_naming_pushdown() -> None:
    frame = _binary(2, 100)
    groups = perf.label_groups(perf.BINARY, frame, target="y", prediction=None,
                               probability="p")
    got = perf.compute_from_groups(perf.BINARY, ["rocAuc"], groups)
    assert "spec.current.source.sql.pushdown" in got.missing["rocAuc"]


MULTICLASS = ["accuracy", "precisionMacro", "recallMacro", "f1Macro", "precisionWeighted",
              "recallWeighted", "f1Weighted"]


@pytest.mark.parametrize(("seed", "size"), SEEDS)
@pytest.mark.parametrize("text", [True, False])
def test_multiclass_from_groups_equals_rows(seed: int, size: int, text: bool) -> None:
    rng = np.random.default_rng(seed)
    classes = np.array(["a", "b", "c", "d"]) if text else np.array([0, 1, 2, 3])
    truth = rng.choice(classes[:3], size)  # "d" is predicted, never true
    pred = np.where(rng.random(size) < 0.6, truth, rng.choice(classes, size))
    frame = pd.DataFrame({"y": truth, "yhat": pred})
    frame.loc[rng.random(size) < 0.05, "y"] = None
    want = perf.compute(perf.MULTICLASS, MULTICLASS, frame, target="y", prediction="yhat",
                        probability=None)
    groups = perf.label_groups(perf.MULTICLASS, frame, target="y", prediction="yhat",
                               probability=None)
    _equal(perf.compute_from_groups(perf.MULTICLASS, MULTICLASS, groups), want)


@pytest.mark.parametrize(("seed", "size"), SEEDS)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_regression_from_sums_equals_rows(seed: int, size: int, offset: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(offset, 3.0, size)
    y[: size // 20] = 0.0  # MAPE's epsilon
    frame = pd.DataFrame({"y": y, "yhat": y + rng.normal(0.2, 1.0, size)})
    frame.loc[rng.random(size) < 0.05, "yhat"] = None
    names = ["mae", "rmse", "mape", "r2"]
    want = perf.compute(perf.REGRESSION, names, frame, target="y", prediction="yhat",
                        probability=None)
    got = perf.compute_from_sums(names, perf.error_sums(frame, target="y", prediction="yhat"))
    _equal(got, want)


def test_regression_constant_labels() -> None:
    frame = pd.DataFrame({"y": [2.0] * 5, "yhat": [2.0, 2.0, 2.5, 2.0, 2.0]})
    names = ["r2"]
    for pred in (frame["yhat"], frame["y"]):
        data = frame.assign(yhat=pred)
        want = perf.compute(perf.REGRESSION, names, data, target="y", prediction="yhat",
                            probability=None)
        got = perf.compute_from_sums(names, perf.error_sums(data, target="y",
                                                            prediction="yhat"))
        _equal(got, want)
