"""Performance metrics with scikit-learn's definitions.

Part of ``stats`` (third stop on the data line): given the labels and predictions of the
current window, compute the metrics a monitor lists. The registry maps each metric name of
the API to the task it suits and how it is computed; a test checks it equals the API enum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn import metrics as skm


class PerformanceInputError(ValueError):
    """The labels or predictions cannot give the requested metric."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """Aligned, non-missing rows of the current window."""

    y_true: NDArray[np.generic]
    y_pred: NDArray[np.generic] | None
    y_score: NDArray[np.float64] | None
    """Binary classification: probability of the positive class."""


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    task: str
    compute: Callable[[Inputs], float]


def _score(x: Inputs) -> NDArray[np.float64]:
    if x.y_score is None:
        raise PerformanceInputError("needs columns.predictionProbability")
    return x.y_score


def _binary_pred(x: Inputs) -> NDArray[np.generic]:
    if x.y_pred is not None:
        return x.y_pred
    return np.asarray(_score(x) >= 0.5)


def _auc(x: Inputs) -> float:
    if x.y_true.all() or not x.y_true.any():
        raise PerformanceInputError("rocAuc is undefined when the window has only one class")
    return float(skm.roc_auc_score(x.y_true, _score(x)))


def _labels(fn: Callable[..., float], **kw: object) -> Callable[[Inputs], float]:
    def compute(x: Inputs) -> float:
        pred = _binary_pred(x) if x.y_pred is None else x.y_pred
        return float(fn(x.y_true, pred, **kw))
    return compute


def _scores(fn: Callable[..., float], **kw: object) -> Callable[[Inputs], float]:
    def compute(x: Inputs) -> float:
        return float(fn(x.y_true, _score(x), **kw))
    return compute


def _regression(fn: Callable[..., float]) -> Callable[[Inputs], float]:
    def compute(x: Inputs) -> float:
        assert x.y_pred is not None
        return float(fn(x.y_true.astype(np.float64), x.y_pred.astype(np.float64)))
    return compute


B, M, R = "binaryClassification", "multiclassClassification", "regression"
_Z: dict[str, object] = {"zero_division": 0}

REGISTRY: dict[tuple[str, str], Metric] = {(m.task, m.name): m for m in [
    Metric("accuracy", B, _labels(skm.accuracy_score)),
    Metric("precision", B, _labels(skm.precision_score, **_Z)),
    Metric("recall", B, _labels(skm.recall_score, **_Z)),
    Metric("f1", B, _labels(skm.f1_score, **_Z)),
    Metric("rocAuc", B, _auc),
    Metric("logLoss", B, _scores(skm.log_loss, labels=[False, True])),
    Metric("brier", B, _scores(skm.brier_score_loss)),
    Metric("accuracy", M, _labels(skm.accuracy_score)),
    Metric("precisionMacro", M, _labels(skm.precision_score, average="macro", **_Z)),
    Metric("recallMacro", M, _labels(skm.recall_score, average="macro", **_Z)),
    Metric("f1Macro", M, _labels(skm.f1_score, average="macro", **_Z)),
    Metric("precisionWeighted", M, _labels(skm.precision_score, average="weighted", **_Z)),
    Metric("recallWeighted", M, _labels(skm.recall_score, average="weighted", **_Z)),
    Metric("f1Weighted", M, _labels(skm.f1_score, average="weighted", **_Z)),
    Metric("mae", R, _regression(skm.mean_absolute_error)),
    Metric("rmse", R, _regression(skm.root_mean_squared_error)),
    Metric("mape", R, _regression(skm.mean_absolute_percentage_error)),
    Metric("r2", R, _regression(skm.r2_score)),
]}


def metric_names(task: str | None = None) -> list[str]:
    """Metric names for one task, or for all."""
    return sorted({n for (t, n) in REGISTRY if task is None or t == task})


def metric_for(name: str, task: str) -> Metric:
    """The metric named for the task."""
    try:
        return REGISTRY[(task, name)]
    except KeyError:
        raise PerformanceInputError(
            f"{name} does not suit {task}; use one of {metric_names(task)}") from None


_TRUE_TEXT = {"1", "1.0", "true"}


def is_positive(values: pd.Series, positive: str | None) -> NDArray[np.bool_]:
    """Binary labels as booleans: equal (as text) to the positive label.

    Without a declared positive label, labels must be 0/1 or booleans and 1/true is positive.
    """
    text = values.astype(str).str.lower()
    if positive is None:
        seen = set(pd.unique(text))
        if not seen <= _TRUE_TEXT | {"0", "0.0", "false"}:
            raise PerformanceInputError(
                f"labels are {sorted(seen)[:5]}; set columns.positiveLabel to the label of "
                "the positive class")
        return text.isin(_TRUE_TEXT).to_numpy()
    wanted = positive.lower()
    matches = _TRUE_TEXT if wanted in _TRUE_TEXT else {wanted}
    return text.isin(matches).to_numpy()


def compute(task: str, names: Iterable[str], frame: pd.DataFrame, *, target: str,
            prediction: str | None, probability: str | None,
            positive: str | None = None) -> dict[str, float]:
    """Each named metric on the rows where the target and the needed predictions exist."""
    if prediction is None and (task != B or probability is None):
        raise PerformanceInputError(
            "needs columns.prediction" + (" or columns.predictionProbability" if task == B
                                          else ""))
    cols = [c for c in (target, prediction, probability) if c is not None]
    rows = frame[cols].dropna()
    if rows.empty:
        raise PerformanceInputError("no row has both the target and a prediction")
    score = rows[probability].to_numpy(dtype=np.float64) if probability else None
    if task == B:
        inputs = Inputs(
            y_true=is_positive(rows[target], positive),
            y_pred=is_positive(rows[prediction], positive) if prediction else None,
            y_score=score)
    else:
        y_true, y_pred = rows[target], rows[prediction] if prediction else None
        if task == M and y_pred is not None and not (
                pd.api.types.is_numeric_dtype(y_true) and pd.api.types.is_numeric_dtype(y_pred)):
            y_true, y_pred = y_true.astype(str), y_pred.astype(str)  # compare labels as text
        inputs = Inputs(y_true.to_numpy(), None if y_pred is None else y_pred.to_numpy(), score)
    return {name: metric_for(name, task).compute(inputs) for name in names}
