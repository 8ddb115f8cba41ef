"""Performance metrics with scikit-learn's definitions.

Part of ``stats`` (third stop on the data line): given the labels and predictions of the
current window, compute the metrics a monitor lists. The binary metrics are a few numpy
sums written to scikit-learn's definitions (tests hold them equal), so that a binary check
never imports scikit-learn, which costs more than a small check takes to run; multiclass and
regression metrics call scikit-learn, imported on first use. Each metric is computed on its own: one
that is undefined for the window (rocAuc with a single class, anything scikit-learn refuses)
comes back as a reason instead of a value, and the others are still computed. No verdicts
here. The registry maps each metric name of the API to the task it suits and how it is
computed; a test checks it equals the API enum. A window read as aggregates
(``sql.pushdown``) gives the same metrics from its groups of rows (``LabelGroups``:
confusion counts and probability sums) or its error sums (``ErrorSums``).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray


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
    """Area under the ROC curve: the Mann-Whitney U of the positives' scores (ties count
    half), over the pairs; what ``roc_auc_score``'s trapezoids come to."""
    y_true = inputs.y_true.astype(bool)
    if y_true.all() or not y_true.any():
        raise PerformanceInputError("rocAuc is undefined when the window has only one class")
    score = _score(inputs)
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    mid_ranks = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based ranks, ties averaged
    positives = int(y_true.sum())
    negatives = y_true.size - positives
    rank_sum = float(mid_ranks[inverse][y_true].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def _confusion(inputs: Inputs) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, true negatives) of a binary
    window, its predictions thresholded at 0.5 when it has only probabilities."""
    truth = inputs.y_true.astype(bool)
    pred = _binary_pred(inputs).astype(bool)
    true_pos = int(np.count_nonzero(truth & pred))
    false_pos = int(np.count_nonzero(~truth & pred))
    false_neg = int(np.count_nonzero(truth & ~pred))
    return true_pos, false_pos, false_neg, truth.size - true_pos - false_pos - false_neg


def _ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, 0 when the denominator is 0 (scikit-learn's
    ``zero_division=0``: precision of a window that predicts no positive, ...)."""
    return numerator / denominator if denominator else 0.0


def _accuracy(inputs: Inputs) -> float:
    true_pos, false_pos, false_neg, true_neg = _confusion(inputs)
    return (true_pos + true_neg) / (true_pos + false_pos + false_neg + true_neg)


def _precision(inputs: Inputs) -> float:
    true_pos, false_pos, _, _ = _confusion(inputs)
    return _ratio(true_pos, true_pos + false_pos)


def _recall(inputs: Inputs) -> float:
    true_pos, _, false_neg, _ = _confusion(inputs)
    return _ratio(true_pos, true_pos + false_neg)


def _f1(inputs: Inputs) -> float:
    true_pos, false_pos, false_neg, _ = _confusion(inputs)
    return _ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg)


def _probabilities(inputs: Inputs) -> NDArray[np.float64]:
    """The positive class's probabilities, refused (as scikit-learn refuses them) outside
    [0, 1]."""
    score = _score(inputs)
    if score.max() > 1:
        raise PerformanceInputError(f"probabilities greater than 1 ({score.max():.4g}); "
                                    "columns.predictionProbability must be in [0, 1]")
    if score.min() < 0:
        raise PerformanceInputError(f"probabilities lower than 0 ({score.min():.4g}); "
                                    "columns.predictionProbability must be in [0, 1]")
    return score


def _log_loss(inputs: Inputs) -> float:
    """Mean cross-entropy, each class's probability clipped to [eps, 1 - eps]."""
    score = _probabilities(inputs)
    eps = float(np.finfo(np.float64).eps)
    truth = inputs.y_true.astype(bool)
    chosen = np.where(truth, score, 1.0 - score)
    return float(-np.log(np.clip(chosen, eps, 1.0 - eps)).mean())


def _brier(inputs: Inputs) -> float:
    score = _probabilities(inputs)
    return float(np.mean((inputs.y_true.astype(np.float64) - score) ** 2))


def _sklearn(name: str) -> Callable[..., float]:
    """scikit-learn's metric ``name``, its module imported on first use."""
    def call(*args: Any, **options: Any) -> float:
        scorer: Callable[..., float] = getattr(importlib.import_module("sklearn.metrics"),
                                               name)
        return scorer(*args, **options)
    return call


def _labels(scorer: Callable[..., float], **options: object) -> Callable[[Inputs], float]:
    def compute(inputs: Inputs) -> float:
        pred = _binary_pred(inputs) if inputs.y_pred is None else inputs.y_pred
        return float(scorer(inputs.y_true, pred, **options))
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
    Metric("accuracy", BINARY, _accuracy),
    Metric("precision", BINARY, _precision),
    Metric("recall", BINARY, _recall),
    Metric("f1", BINARY, _f1),
    Metric("rocAuc", BINARY, _auc),
    Metric("logLoss", BINARY, _log_loss),
    Metric("brier", BINARY, _brier),
    Metric("accuracy", MULTICLASS, _labels(_sklearn("accuracy_score"))),
    Metric("precisionMacro", MULTICLASS, _labels(_sklearn("precision_score"), **_MACRO)),
    Metric("recallMacro", MULTICLASS, _labels(_sklearn("recall_score"), **_MACRO)),
    Metric("f1Macro", MULTICLASS, _labels(_sklearn("f1_score"), **_MACRO)),
    Metric("precisionWeighted", MULTICLASS, _labels(_sklearn("precision_score"), **_WEIGHTED)),
    Metric("recallWeighted", MULTICLASS, _labels(_sklearn("recall_score"), **_WEIGHTED)),
    Metric("f1Weighted", MULTICLASS, _labels(_sklearn("f1_score"), **_WEIGHTED)),
    Metric("mae", REGRESSION, _regression(_sklearn("mean_absolute_error"))),
    Metric("rmse", REGRESSION, _regression(_sklearn("root_mean_squared_error"))),
    Metric("mape", REGRESSION, _regression(_sklearn("mean_absolute_percentage_error"))),
    Metric("r2", REGRESSION, _regression(_sklearn("r2_score"))),
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
    Integer and boolean labels are written as text once per distinct value (``str``
    writes them as pandas does: ``1``, ``True``).
    """
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biu":
        distinct, position = np.unique(values.to_numpy(), return_inverse=True)
        labels = [str(value).lower() for value in distinct.tolist()]
        matches = _positive_texts(positive, set(labels) if positive is None else None)
        flags = np.array([label in matches for label in labels], dtype=np.bool_)
        picked: NDArray[np.bool_] = flags[position.ravel()]
        return picked
    text = values.astype(str).str.lower()
    matches = _positive_texts(positive, set(pd.unique(text)) if positive is None else None)
    found: NDArray[np.bool_] = text.isin(matches).to_numpy()
    return found


def _positive_texts(positive: str | None, seen: set[str] | None) -> set[str]:
    """The labels, as lower-case text, that mean the positive class; without a declared
    positive label the labels ``seen`` must be 0/1 or booleans."""
    if positive is None:
        if seen is not None and not seen <= _TRUE_TEXT | {"0", "0.0", "false"}:
            raise PerformanceInputError(
                f"labels are {sorted(seen)[:5]}; set columns.positiveLabel to the label of "
                "the positive class")
        return _TRUE_TEXT
    wanted = positive.lower()
    return _TRUE_TEXT if wanted in _TRUE_TEXT else {wanted}


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


def _present(series: pd.Series) -> NDArray[np.bool_] | None:
    """Where a column has a value (``notna``), or None when it has one in every row:
    numpy integer and boolean columns cannot miss one, a float column misses NaN."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        if dtype.kind != "f":
            return None
        known = ~np.isnan(series.to_numpy())
    else:
        known = series.notna().to_numpy(dtype=np.bool_)
    return None if known.all() else known


def present_rows(frame: pd.DataFrame, columns: list[str]) -> dict[str, pd.Series]:
    """The columns, cut to the rows where every one of them has a value: what
    ``frame[columns].dropna()`` keeps, without building that frame (on a window of a few
    hundred rows pandas' overhead is most of a check's metric cost). A column is returned
    as it is when no row is dropped."""
    series = {name: frame[name] for name in columns}
    keep: NDArray[np.bool_] | None = None
    for column in series.values():
        known = _present(column)
        if known is not None:
            keep = known if keep is None else keep & known
    if keep is None:
        return series
    return {name: column[keep] for name, column in series.items()}


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
    rows = present_rows(frame, [c for c in (target, prediction, probability) if c is not None])
    if not len(rows[target]):
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


# ------------------------------------------------------------------- from aggregates


@dataclass(frozen=True, slots=True)
class LabelGroups:
    """A classifier's labelled window as groups of rows: what an aggregate query returns
    (``GROUP BY label, prediction`` over the rows with every needed column present).

    ``labels`` and ``predictions`` hold each group's values as the rows do (``compute``
    reads them the same way); a binary window with only probabilities has ``above``
    instead of ``predictions``: whether the group's scores are at least 0.5.
    """

    labels: pd.Series
    predictions: pd.Series | None
    above: NDArray[np.bool_] | None
    counts: NDArray[np.int64]
    log_loss_positive: NDArray[np.float64] | None = None
    """Per group, the sum of ``-ln(clip(p))`` (the log loss of its rows were they positive);
    None without probabilities."""
    log_loss_negative: NDArray[np.float64] | None = None
    """The same of ``-ln(clip(1 - p))``."""
    brier_positive: NDArray[np.float64] | None = None
    """Per group, the sum of ``(1 - p)^2``."""
    brier_negative: NDArray[np.float64] | None = None
    """The sum of ``p^2``."""
    score_min: float | None = None
    score_max: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorSums:
    """A regression's labelled window as sums over its rows (``e = y - prediction``; ``c``
    any constant near the labels' mean, which keeps the labels' spread exact)."""

    rows: int
    absolute: float
    """Sum of ``|e|``."""
    squared: float
    """Sum of ``e^2``."""
    percentage: float
    """Sum of ``|e| / max(|y|, eps)`` (scikit-learn's MAPE terms)."""
    centred: float
    """Sum of ``y - c``."""
    centred_squared: float
    """Sum of ``(y - c)^2``."""
    label_min: float
    label_max: float


#: Epsilon of scikit-learn's clipping (log loss) and MAPE denominator.
EPS = float(np.finfo(np.float64).eps)


def _binary_groups(groups: LabelGroups, names: Iterable[str], positive: str | None
                   ) -> Computed:
    truth = is_positive(groups.labels, positive)
    if groups.predictions is not None:
        pred = is_positive(groups.predictions, positive)
    else:
        assert groups.above is not None
        pred = groups.above
    counts = groups.counts
    true_pos = int(counts[truth & pred].sum())
    false_pos = int(counts[~truth & pred].sum())
    false_neg = int(counts[truth & ~pred].sum())
    total = int(counts.sum())
    true_neg = total - true_pos - false_pos - false_neg
    out = Computed()
    for name in names:
        value: float | str
        if name == "accuracy":
            value = (true_pos + true_neg) / total
        elif name == "precision":
            value = _ratio(true_pos, true_pos + false_pos)
        elif name == "recall":
            value = _ratio(true_pos, true_pos + false_neg)
        elif name == "f1":
            value = _ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg)
        elif name in ("logLoss", "brier"):
            summed = _probability_sum(groups, truth, name)
            value = summed if isinstance(summed, str) else summed / total
        else:
            value = (f"{name} needs every score of the window; it is not computed from "
                     "aggregates (spec.current.source.sql.pushdown)")
        _keep(out, name, value)
    return out


def _probability_sum(groups: LabelGroups, truth: NDArray[np.bool_], name: str) -> float | str:
    if groups.score_min is None or groups.score_max is None:
        return "needs columns.predictionProbability"
    if groups.score_max > 1:
        return (f"probabilities greater than 1 ({groups.score_max:.4g}); "
                "columns.predictionProbability must be in [0, 1]")
    if groups.score_min < 0:
        return (f"probabilities lower than 0 ({groups.score_min:.4g}); "
                "columns.predictionProbability must be in [0, 1]")
    positive, negative = ((groups.log_loss_positive, groups.log_loss_negative)
                          if name == "logLoss" else
                          (groups.brier_positive, groups.brier_negative))
    assert positive is not None
    assert negative is not None
    return float(positive[truth].sum() + negative[~truth].sum())


def _keep(out: Computed, name: str, value: float | str) -> None:
    if isinstance(value, str):
        out.missing[name] = value[:REASON_CHARS]
    elif not math.isfinite(value):
        out.missing[name] = f"{name} is undefined for this window (it came out {value})"
    else:
        out.values[name] = value


def compute_from_groups(task: str, names: Iterable[str], groups: LabelGroups,
                        positive: str | None = None) -> Computed:
    """``compute`` of a classifier's window from its groups of rows: the same values from
    the confusion counts (multiclass: scikit-learn's metrics of the groups weighted by
    their counts) and, for logLoss and brier, the groups' sums. rocAuc needs every score
    and is reported missing."""
    names = list(names)
    for name in names:
        metric_for(name, task)
    if int(groups.counts.sum()) == 0:
        raise PerformanceInputError("no row has both the target and a prediction")
    if task == BINARY:
        return _binary_groups(groups, names, positive)
    assert groups.predictions is not None
    y_true, y_pred = groups.labels, groups.predictions
    if not (pd.api.types.is_numeric_dtype(y_true) and pd.api.types.is_numeric_dtype(y_pred)):
        y_true, y_pred = y_true.astype(str), y_pred.astype(str)
    options = {"accuracy": {}, "precisionMacro": _MACRO, "recallMacro": _MACRO,
               "f1Macro": _MACRO, "precisionWeighted": _WEIGHTED,
               "recallWeighted": _WEIGHTED, "f1Weighted": _WEIGHTED}
    scorers = {"accuracy": "accuracy_score", "precisionMacro": "precision_score",
               "recallMacro": "recall_score", "f1Macro": "f1_score",
               "precisionWeighted": "precision_score", "recallWeighted": "recall_score",
               "f1Weighted": "f1_score"}
    out = Computed()
    weights = groups.counts.astype(np.float64)
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(_sklearn(scorers[name])(y_true.to_numpy(), y_pred.to_numpy(),
                                                      sample_weight=weights,
                                                      **options[name]))
        except ValueError as exc:
            _keep(out, name, str(exc))
            continue
        _keep(out, name, value)
    return out


def compute_from_sums(names: Iterable[str], sums: ErrorSums) -> Computed:
    """``compute`` of a regression's window from its error sums: mae, rmse and mape are
    their means; r2 is ``1 - squared / spread`` with scikit-learn's answers for labels
    without spread (1 for a perfect fit, else 0)."""
    if sums.rows == 0:
        raise PerformanceInputError("no row has both the target and a prediction")
    out = Computed()
    rows = sums.rows
    for name in names:
        metric_for(name, REGRESSION)
        if name == "mae":
            value = sums.absolute / rows
        elif name == "rmse":
            value = math.sqrt(sums.squared / rows)
        elif name == "mape":
            value = sums.percentage / rows
        else:
            spread = (0.0 if sums.label_min == sums.label_max else
                      sums.centred_squared - sums.centred * sums.centred / rows)
            if spread == 0.0:
                value = 1.0 if sums.squared == 0.0 else 0.0
            else:
                value = 1.0 - sums.squared / spread
        _keep(out, name, value)
    return out


def label_groups(task: str, frame: pd.DataFrame, *, target: str, prediction: str | None,
                 probability: str | None) -> LabelGroups:
    """The groups of a window's rows, from the rows: what the aggregate query returns,
    the row-mode twin the tests compare with."""
    cols = [c for c in (target, prediction, probability) if c is not None]
    rows = frame[cols].dropna()
    keys: list[Any] = [rows[target]]
    if prediction is not None:
        keys.append(rows[prediction])
    else:
        assert probability is not None
        keys.append(rows[probability] >= 0.5)
    grouped = rows.groupby(keys, sort=False, dropna=False)
    counts = grouped.size()
    index = counts.index
    labels = pd.Series(index.get_level_values(0))
    second = pd.Series(index.get_level_values(1))
    groups: dict[str, Any] = {}
    if probability is not None and task == BINARY:
        score = rows[probability].astype(np.float64)
        chosen = pd.DataFrame({
            "lp": -np.log(np.clip(score, EPS, 1 - EPS)),
            "ln": -np.log(np.clip(1 - score, EPS, 1 - EPS)),
            "bp": (1 - score) ** 2, "bn": score ** 2})
        sums = chosen.groupby([k.to_numpy() for k in keys], sort=False).sum().reindex(index)
        groups = {"log_loss_positive": sums["lp"].to_numpy(),
                  "log_loss_negative": sums["ln"].to_numpy(),
                  "brier_positive": sums["bp"].to_numpy(),
                  "brier_negative": sums["bn"].to_numpy(),
                  "score_min": float(score.min()) if len(score) else None,
                  "score_max": float(score.max()) if len(score) else None}
    return LabelGroups(labels, second if prediction is not None else None,
                       None if prediction is not None else second.to_numpy(dtype=bool),
                       np.asarray(counts.to_numpy(), dtype=np.int64), **groups)


def error_sums(frame: pd.DataFrame, *, target: str, prediction: str) -> ErrorSums:
    """The error sums of a regression window, from the rows (the row-mode twin)."""
    rows = frame[[target, prediction]].dropna()
    labels = rows[target].to_numpy(dtype=np.float64)
    error = labels - rows[prediction].to_numpy(dtype=np.float64)
    centre = float(labels.mean()) if labels.size else 0.0
    return ErrorSums(
        rows=int(labels.size), absolute=float(np.abs(error).sum()),
        squared=float(np.dot(error, error)),
        percentage=float((np.abs(error) / np.maximum(np.abs(labels), EPS)).sum()),
        centred=float((labels - centre).sum()),
        centred_squared=float(((labels - centre) ** 2).sum()),
        label_min=float(labels.min()) if labels.size else math.nan,
        label_max=float(labels.max()) if labels.size else math.nan)
