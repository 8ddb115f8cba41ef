"""Performance metrics: scikit-learn's definitions, label handling, input errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from modelmon.stats.performance import PerformanceInputError, metric_names
from modelmon.stats.performance import compute as compute_all


def compute(*args: Any, **kwargs: Any) -> dict[str, float]:
    """The values of a computation in which every metric was defined."""
    got = compute_all(*args, **kwargs)
    assert not got.missing, got.missing
    return got.values

RNG = np.random.default_rng(7)


def binary_frame(n: int = 400) -> pd.DataFrame:
    y = RNG.integers(0, 2, n)
    p = np.clip(y * 0.6 + RNG.random(n) * 0.5, 0, 1)
    return pd.DataFrame({"y": y, "p": p, "yhat": (p >= 0.5).astype(int)})


def test_binary_metrics_match_sklearn() -> None:
    f = binary_frame()
    got = compute("binaryClassification", metric_names("binaryClassification"), f,
                  target="y", prediction="yhat", probability="p")
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(f.y, f.yhat))
    assert got["precision"] == pytest.approx(skm.precision_score(f.y, f.yhat))
    assert got["recall"] == pytest.approx(skm.recall_score(f.y, f.yhat))
    assert got["f1"] == pytest.approx(skm.f1_score(f.y, f.yhat))
    assert got["rocAuc"] == pytest.approx(skm.roc_auc_score(f.y, f.p))
    assert got["logLoss"] == pytest.approx(skm.log_loss(f.y, f.p))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(f.y, f.p))


def test_known_answer_small() -> None:
    f = pd.DataFrame({"y": [1, 1, 0, 0], "yhat": [1, 0, 0, 1]})
    got = compute("binaryClassification", ["accuracy", "precision", "recall"], f,
                  target="y", prediction="yhat", probability=None)
    assert got == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5}


def test_labels_as_text_need_a_positive_label() -> None:
    f = pd.DataFrame({"y": ["yes", "no", "yes"], "yhat": ["yes", "yes", "yes"]})
    with pytest.raises(PerformanceInputError, match="positiveLabel"):
        compute("binaryClassification", ["recall"], f, target="y", prediction="yhat",
                probability=None)
    got = compute("binaryClassification", ["recall", "precision"], f, target="y",
                  prediction="yhat", probability=None, positive="yes")
    assert got == {"recall": 1.0, "precision": pytest.approx(2 / 3)}


def test_bool_target_with_int_predictions() -> None:
    f = pd.DataFrame({"y": [True, False, True, False], "yhat": [1, 0, 0, 0]})
    got = compute("binaryClassification", ["accuracy"], f, target="y", prediction="yhat",
                  probability=None)
    assert got["accuracy"] == 0.75


def test_probability_only_thresholds_at_half() -> None:
    f = pd.DataFrame({"y": [1, 0, 1, 0], "p": [0.9, 0.2, 0.4, 0.6]})
    got = compute("binaryClassification", ["accuracy", "rocAuc"], f, target="y",
                  prediction=None, probability="p")
    assert got["accuracy"] == 0.5 and got["rocAuc"] == 0.75


def test_multiclass_metrics_match_sklearn() -> None:
    y = RNG.choice(["a", "b", "c"], 300)
    yhat = np.where(RNG.random(300) < 0.7, y, RNG.choice(["a", "b", "c"], 300))
    f = pd.DataFrame({"y": y, "yhat": yhat})
    got = compute("multiclassClassification", metric_names("multiclassClassification"), f,
                  target="y", prediction="yhat", probability=None)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    for avg in ("macro", "weighted"):
        assert got[f"f1{avg.title()}"] == pytest.approx(skm.f1_score(y, yhat, average=avg))
        assert got[f"precision{avg.title()}"] == pytest.approx(
            skm.precision_score(y, yhat, average=avg))
        assert got[f"recall{avg.title()}"] == pytest.approx(
            skm.recall_score(y, yhat, average=avg))


def test_regression_metrics_match_sklearn() -> None:
    y = RNG.normal(10, 2, 200)
    yhat = y + RNG.normal(0, 1, 200)
    f = pd.DataFrame({"y": y, "yhat": yhat})
    got = compute("regression", ["mae", "rmse", "mape", "r2"], f, target="y",
                  prediction="yhat", probability=None)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yhat)))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, yhat))
    assert got["r2"] == pytest.approx(skm.r2_score(y, yhat))


def test_rows_missing_labels_are_skipped_and_all_missing_errors() -> None:
    f = pd.DataFrame({"y": [1, None, 0], "yhat": [1, 1, 1]})
    assert compute("binaryClassification", ["accuracy"], f, target="y", prediction="yhat",
                   probability=None) == {"accuracy": 0.5}
    with pytest.raises(PerformanceInputError, match="no row"):
        compute("binaryClassification", ["accuracy"], f.assign(y=None), target="y",
                prediction="yhat", probability=None)


def test_one_class_window_leaves_rocauc_undefined_and_computes_the_others() -> None:
    f = pd.DataFrame({"y": [1, 1, 1, 1], "p": [0.2, 0.9, 0.6, 0.4], "yhat": [0, 1, 1, 0]})
    got = compute_all("binaryClassification", ["rocAuc", "accuracy", "recall", "logLoss"], f,
                      target="y", prediction="yhat", probability="p")
    assert got.values == {"accuracy": 0.5, "recall": 0.5,
                          "logLoss": pytest.approx(skm.log_loss(f.y, f.p, labels=[0, 1]))}
    assert list(got.missing) == ["rocAuc"]
    assert "only one class" in got.missing["rocAuc"]


def test_a_metric_scikit_learn_refuses_is_missing_with_its_reason() -> None:
    # r2 of a single row is NaN and words are no regression target: reasons, not values;
    # mae of the single row still counts.
    f = pd.DataFrame({"y": [2.0], "yhat": [1.0]})
    got = compute_all("regression", ["mae", "r2"], f, target="y", prediction="yhat",
                      probability=None)
    assert got.values == {"mae": 1.0}
    assert "undefined" in got.missing["r2"]
    words = pd.DataFrame({"y": ["a", "b"], "yhat": ["a", "a"]})
    refused = compute_all("regression", ["mae"], words, target="y", prediction="yhat",
                          probability=None)
    assert not refused.values and refused.missing["mae"]
