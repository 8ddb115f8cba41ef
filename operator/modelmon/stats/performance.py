"""Performance metrics with scikit-learn's definitions.

Part of ``stats`` (third stop on the data line): given the labels and predictions of the
current window, compute the metrics a monitor lists. Each metric is computed on its own: one
that is undefined for the window (rocAuc with a single class, anything scikit-learn refuses)
comes back as a reason instead of a value, and the others are still computed. No verdicts
here. The registry maps each metric name of the API to the task it suits and how it is
computed; a test checks it equals the API enum.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn import metrics as skm


class PerformanceInputError(ValueError):
    """The labels or predictions cannot give the requested metric."""


@dataclass(frozen=True, slots=True)
class Computed:
    """The metrics of a window: values, and why the others could not be computed."""

    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    """Metric name to the reason it has no value for this window."""


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


def _score(inputs: Inputs) -> NDArray[np.float64]:
    if inputs.y_score is None:
        raise PerformanceInputError("needs columns.predictionProbability")
    return inputs.y_score


def _binary_pred(inputs: Inputs) -> NDArray[np.generic]:
    if inputs.y_pred is not None:
        return inputs.y_pred
    return np.asarray(_score(inputs) >= 0.5)


def _auc(inputs: Inputs) -> float:
    if inputs.y_true.all() or not inputs.y_true.any():
        raise PerformanceInputError("rocAuc is undefined when the window has only one class")
    return float(skm.roc_auc_score(inputs.y_true, _score(inputs)))


def _labels(scorer: Callable[..., float], **options: object) -> Callable[[Inputs], float]:
    def compute(inputs: Inputs) -> float:
        pred = _binary_pred(inputs) if inputs.y_pred is None else inputs.y_pred
        return float(scorer(inputs.y_true, pred, **options))
    return compute


def _scores(scorer: Callable[..., float], **options: object) -> Callable[[Inputs], float]:
    def compute(inputs: Inputs) -> float:
        return float(scorer(inputs.y_true, _score(inputs), **options))
    return compute


def _regression(scorer: Callable[..., float]) -> Callable[[Inputs], float]:
    def compute(inputs: Inputs) -> float:
        assert inputs.y_pred is not None
        return float(scorer(inputs.y_true.astype(np.float64), inputs.y_pred.astype(np.float64)))
    return compute


BINARY = "binaryClassification"
MULTICLASS = "multiclassClassification"
REGRESSION = "regression"
#: Precision, recall and F1 are 0, not a warning, when a class is never predicted.
_ZERO_DIVISION: dict[str, object] = {"zero_division": 0}
_MACRO: dict[str, object] = {"average": "macro", **_ZERO_DIVISION}
_WEIGHTED: dict[str, object] = {"average": "weighted", **_ZERO_DIVISION}

REGISTRY: dict[tuple[str, str], Metric] = {(m.task, m.name): m for m in [
    Metric("accuracy", BINARY, _labels(skm.accuracy_score)),
    Metric("precision", BINARY, _labels(skm.precision_score, **_ZERO_DIVISION)),
    Metric("recall", BINARY, _labels(skm.recall_score, **_ZERO_DIVISION)),
    Metric("f1", BINARY, _labels(skm.f1_score, **_ZERO_DIVISION)),
    Metric("rocAuc", BINARY, _auc),
    Metric("logLoss", BINARY, _scores(skm.log_loss, labels=[False, True])),
    Metric("brier", BINARY, _scores(skm.brier_score_loss)),
    Metric("accuracy", MULTICLASS, _labels(skm.accuracy_score)),
    Metric("precisionMacro", MULTICLASS, _labels(skm.precision_score, **_MACRO)),
    Metric("recallMacro", MULTICLASS, _labels(skm.recall_score, **_MACRO)),
    Metric("f1Macro", MULTICLASS, _labels(skm.f1_score, **_MACRO)),
    Metric("precisionWeighted", MULTICLASS, _labels(skm.precision_score, **_WEIGHTED)),
    Metric("recallWeighted", MULTICLASS, _labels(skm.recall_score, **_WEIGHTED)),
    Metric("f1Weighted", MULTICLASS, _labels(skm.f1_score, **_WEIGHTED)),
    Metric("mae", REGRESSION, _regression(skm.mean_absolute_error)),
    Metric("rmse", REGRESSION, _regression(skm.root_mean_squared_error)),
    Metric("mape", REGRESSION, _regression(skm.mean_absolute_percentage_error)),
    Metric("r2", REGRESSION, _regression(skm.r2_score)),
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


#: The longest reason kept for a metric that could not be computed.
REASON_CHARS = 200


def _one(metric: Metric, inputs: Inputs) -> float | str:
    """The metric's value, or why the window does not define it."""
    try:
        with warnings.catch_warnings():  # an undefined metric is reported, not warned of
            warnings.simplefilter("ignore")
            value = metric.compute(inputs)
    except ValueError as exc:  # PerformanceInputError and scikit-learn's own refusals
        return str(exc)[:REASON_CHARS]
    if not math.isfinite(value):
        return f"{metric.name} is undefined for this window (it came out {value})"
    return value


def compute(task: str, names: Iterable[str], frame: pd.DataFrame, *, target: str,
            prediction: str | None, probability: str | None,
            positive: str | None = None) -> Computed:
    """Each named metric on the rows where the target and the needed predictions exist.

    A metric the window does not define is missing with the reason; the others keep their
    values. Raises ``PerformanceInputError`` only when no metric can be computed from these
    columns at all (no prediction column, no row with both a label and a prediction, labels
    that need ``columns.positiveLabel``).
    """
    if prediction is None and (task != BINARY or probability is None):
        raise PerformanceInputError(
            "needs columns.prediction" + (" or columns.predictionProbability" if task == BINARY
                                          else ""))
    metrics = [metric_for(name, task) for name in names]
    cols = [c for c in (target, prediction, probability) if c is not None]
    rows = frame[cols].dropna()
    if rows.empty:
        raise PerformanceInputError("no row has both the target and a prediction")
    score = rows[probability].to_numpy(dtype=np.float64) if probability else None
    if task == BINARY:
        inputs = Inputs(
            y_true=is_positive(rows[target], positive),
            y_pred=is_positive(rows[prediction], positive) if prediction else None,
            y_score=score)
    else:
        y_true, y_pred = rows[target], rows[prediction] if prediction else None
        if task == MULTICLASS and y_pred is not None and not (
                pd.api.types.is_numeric_dtype(y_true) and pd.api.types.is_numeric_dtype(y_pred)):
            y_true, y_pred = y_true.astype(str), y_pred.astype(str)  # compare labels as text
        inputs = Inputs(y_true.to_numpy(), None if y_pred is None else y_pred.to_numpy(), score)
    out = Computed()
    for metric in metrics:
        result = _one(metric, inputs)
        if isinstance(result, str):
            out.missing[metric.name] = result
        else:
            out.values[metric.name] = result
    return out
