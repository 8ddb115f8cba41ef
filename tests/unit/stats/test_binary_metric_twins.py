"""The binary metrics are numpy sums written to scikit-learn's definitions: held equal to
scikit-learn on random windows with ties, zero divisions and probabilities at 0 and 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from modelmon.stats.performance import compute as compute_all

BINARY = ["accuracy", "precision", "recall", "f1", "rocAuc", "logLoss", "brier"]


def _twins(y: np.ndarray, yhat: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"accuracy": skm.accuracy_score(y, yhat),
            "precision": skm.precision_score(y, yhat, zero_division=0),
            "recall": skm.recall_score(y, yhat, zero_division=0),
            "f1": skm.f1_score(y, yhat, zero_division=0),
            "rocAuc": skm.roc_auc_score(y, p),
            "logLoss": skm.log_loss(y, p, labels=[False, True]),
            "brier": skm.brier_score_loss(y, p)}


@pytest.mark.parametrize("seed", range(12))
def test_binary_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 400))
    y = rng.random(size) < rng.uniform(0.05, 0.95)
    y[0], y[-1] = True, False  # both classes
    # Rounded probabilities give ties; some are exactly 0 or 1 (clipped in the log loss).
    p = np.round(np.clip(y * rng.uniform(0, 0.6) + rng.random(size) * 0.7, 0, 1),
                 int(rng.integers(1, 4)))
    yhat = (p >= 0.5) if seed % 3 else np.zeros(size, dtype=bool)  # no positive predicted
    frame = pd.DataFrame({"y": y.astype(int), "yhat": yhat.astype(int), "p": p})
    got = compute_all("binaryClassification", BINARY, frame, target="y", prediction="yhat",
                      probability="p")
    assert not got.missing
    assert got.values == pytest.approx(_twins(y, yhat, p), rel=1e-12, abs=1e-15)


def test_probabilities_outside_zero_one_are_refused_like_scikit_learn() -> None:
    frame = pd.DataFrame({"y": [0, 1, 1], "yhat": [0, 1, 1], "p": [0.1, 1.2, 0.8]})
    got = compute_all("binaryClassification", ["logLoss", "brier", "accuracy"], frame,
                      target="y", prediction="yhat", probability="p")
    assert got.values == {"accuracy": 1.0}
    assert "greater than 1" in got.missing["logLoss"] and "greater than 1" in got.missing["brier"]
    for twin in (skm.brier_score_loss, skm.log_loss):
        with pytest.raises(ValueError, match="greater than 1"):
            twin(frame.y, frame.p)
