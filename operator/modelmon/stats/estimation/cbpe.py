"""Confidence-based performance estimation (CBPE) for classifiers.

Part of ``stats.estimation`` (``stats`` on the data line, between the fitted reference
profile and ``evaluation``). Fitted once on the labelled reference, it estimates a window's
metrics from the model's probabilities alone.

Method. The reference's probabilities are calibrated against its labels with isotonic
regression (scikit-learn's ``IsotonicRegression``): binary on the positive class's column,
multiclass one-vs-rest per class column, after which each row is renormalised to sum to 1.
Isotonic regression only assumes that a higher probability means a likelier class, so it
corrects over- and under-confidence of any shape without a parametric form, and it is what
NannyML uses too. A reference that is already calibrated gets a curve close to the
identity, steps aside: the estimate barely changes (probabilities within a step are pooled
to that step's observed rate). On the reference itself the calibrated probabilities of each
step sum to the labels of that step, so the estimate there equals the realized metric up to
steps that straddle the decision threshold.

For a window, each row's calibrated probabilities are the chance of each true class, so the
expected confusion matrix is the sum, per predicted class (the prediction column when given,
else the argmax of the probabilities, or ``p >= 0.5`` for a binary model), of the rows'
calibrated probabilities. Accuracy, precision, recall and F1 follow from it with the names
and averages of ``stats.performance`` (binary: of the positive class; multiclass: macro and
weighted, over the classes that are expected or predicted; zero when undefined). rocAuc is
the expected AUC: each row is a positive with weight ``q`` (its calibrated probability) and a
negative with weight ``1 - q``, ranked by the model's own score: the area under the
expected ROC curve (expected true and false positives at every threshold), computed exactly
from the sorted scores, ties counted half. In that area a row's weight as a positive also
meets its own weight as a negative, as if a row could be paired with itself. Leaving those
self-pairs out would give the expected AUC of perfectly calibrated probabilities; but the
isotonic curve, fitted on the reference itself, is a little sharper than the truth and the
estimate runs high, and the self-pairs pull it back towards 0.5 a little (on six draws of
``benchmarks/estimation.py``'s binary data, mean absolute error 0.1-0.6% lower with them in
each scenario). Multiclass rocAuc is the one-vs-rest macro average
of that per class. With labels as weights (``q`` 0 or 1) the same formulas give the
realized metrics, which is how the bands' reference samples are scored.

Assumption: only the inputs shift (the probability of each class given the model's score
stays as on the reference). Under concept shift the estimate is wrong and nothing here can
tell.

Bounded work: the calibration is fitted once on at most ``MAX_FIT_ROWS`` reference rows; an
estimate is a sort and a few sums over the window, plus the bands' reference samples once per
window size (see ``bands``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelmon.stats.estimation import inputs
from modelmon.stats.estimation.bands import Estimate, SamplingBands

if TYPE_CHECKING:  # imported by the first fit, not by a check that estimates nothing
    from sklearn.isotonic import IsotonicRegression

#: Most reference rows the calibration is fitted on (a seeded sample beyond it).
MAX_FIT_ROWS = 500_000

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "rocAuc")
MULTICLASS_METRICS = ("accuracy", "precisionMacro", "recallMacro", "f1Macro",
                      "precisionWeighted", "recallWeighted", "f1Weighted", "rocAuc")


def expected_auc(scores: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    """Area under the expected ROC curve of ``scores`` when each row is a positive with
    weight ``weights`` and a negative with weight ``1 - weights``; NaN when there is no
    weighted positive or no weighted negative. With 0/1 weights this is the ordinary ROC AUC
    (ties count half)."""
    order = np.argsort(scores, kind="stable")
    ranked, chance = scores[order], weights[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one group per tie
    pos = np.add.reduceat(chance, starts)
    neg = np.add.reduceat(1.0 - chance, starts)
    below = np.cumsum(neg) - neg
    concordant = float(np.sum(pos * below) + 0.5 * np.sum(pos * neg))
    pairs = float(pos.sum() * neg.sum())
    return concordant / pairs if pairs > 0 else math.nan


def _ratio(top: NDArray[np.float64], bottom: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(top)
    np.divide(top, bottom, out=out, where=bottom > 0)
    return out


def metrics(scores: NDArray[np.float64], weights: NDArray[np.float64],
            predicted: NDArray[np.intp],
            wanted: Collection[str] | None = None) -> dict[str, float]:
    """Metrics from the expected confusion matrix (only those in ``wanted`` when given:
    rocAuc, a sort per class, is skipped unless asked for).

    ``scores``: the model's probabilities, (n, k), or (n, 1) for a binary model's positive
    class; ``weights``: the chance each row is of each class (calibrated probabilities, or
    one-hot labels for the realized metrics), (n, k) with k >= 2; ``predicted``: each row's
    predicted class. A metric the rows do not define (rocAuc without both classes) is left
    out.
    """
    count = weights.shape[1]
    confusion = np.zeros((count, count))  # true class by predicted class
    for column in range(count):
        confusion[:, column] = weights[predicted == column].sum(axis=0)
    hits = np.diag(confusion)
    predicted_count, true_count = confusion.sum(axis=0), confusion.sum(axis=1)
    rows = float(confusion.sum())
    precision, recall = _ratio(hits, predicted_count), _ratio(hits, true_count)
    f_one = _ratio(2.0 * hits, predicted_count + true_count)
    out = {"accuracy": float(hits.sum() / rows)}
    auc = math.nan
    with_auc = wanted is None or "rocAuc" in wanted
    if scores.shape[1] == 1:
        out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f_one[1]))
        if with_auc:
            auc = expected_auc(scores[:, 0], weights[:, 1])
    else:
        present = (predicted_count + true_count) > 0
        share = true_count / rows
        for name, per_class in (("precision", precision), ("recall", recall), ("f1", f_one)):
            out[f"{name}Macro"] = float(per_class[present].mean())
            out[f"{name}Weighted"] = float(np.sum(per_class * share))
        if with_auc:
            aucs = [expected_auc(scores[:, c], weights[:, c]) for c in range(count)]
            auc = float(np.mean(aucs)) if all(math.isfinite(a) for a in aucs) else math.nan
    if math.isfinite(auc):
        out["rocAuc"] = auc
    return out if wanted is None else {k: v for k, v in out.items() if k in wanted}


def _predicted(scores: NDArray[np.float64], prediction: ArrayLike | None,
               classes: Sequence[object], where: str) -> NDArray[np.intp]:
    if prediction is not None:
        found = inputs.class_indices(prediction, classes, inputs.PREDICTION, where)
        if found.shape[0] != scores.shape[0]:
            raise inputs.EstimationInputError(
                f"{inputs.PREDICTION}: the {where} has {found.shape[0]} predictions for "
                f"{scores.shape[0]} rows of probabilities; give one per row")
        return found
    if scores.shape[1] == 1:
        return np.asarray(scores[:, 0] >= 0.5, dtype=np.intp)
    return np.asarray(np.argmax(scores, axis=1), dtype=np.intp)


@dataclass(frozen=True, slots=True)
class ClassifierEstimator:
    """CBPE fitted on one reference: its calibration and the bands' reference samples."""

    classes: tuple[object, ...]
    calibrators: tuple[IsotonicRegression, ...]
    """One per probability column (binary: one, for the positive class)."""
    bands: SamplingBands

    @property
    def binary(self) -> bool:
        return len(self.calibrators) == 1

    def calibrate(self, probabilities: ArrayLike) -> NDArray[np.float64]:
        """Calibrated chance of each class, (n, k) rows summing to 1 (binary: k = 2,
        negative then positive)."""
        scores = inputs.probabilities(probabilities, len(self.classes), inputs.CURRENT)
        return self._calibrated(scores)

    def _calibrated(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        # The fitted curve read directly: IsotonicRegression.predict with out_of_bounds
        # "clip" is this linear interpolation, behind input checks that cost more than it.
        fitted = np.column_stack([np.interp(scores[:, c], cal.X_thresholds_, cal.y_thresholds_)
                                  for c, cal in enumerate(self.calibrators)])
        if self.binary:
            return np.column_stack([1.0 - fitted[:, 0], fitted[:, 0]])
        total = fitted.sum(axis=1, keepdims=True)
        # A row every calibration curve puts at zero keeps its own probabilities' shape.
        raw_total = scores.sum(axis=1, keepdims=True)
        fallback = np.where(raw_total > 0, scores / np.where(raw_total > 0, raw_total, 1.0),
                            1.0 / scores.shape[1])
        return np.where(total > 0, fitted / np.where(total > 0, total, 1.0), fallback)

    def estimate(self, probabilities: ArrayLike, prediction: ArrayLike | None = None,
                 wanted: Collection[str] | None = None) -> dict[str, Estimate]:
        """Estimated metrics of a window (``BINARY_METRICS`` or ``MULTICLASS_METRICS``, or
        those of them in ``wanted``), each with its sampling band for a window of this many
        rows. Raises ``EstimationInputError`` for missing or out-of-range probabilities or
        unknown predicted classes."""
        scores = inputs.probabilities(probabilities, len(self.classes), inputs.CURRENT)
        predicted = _predicted(scores, prediction, self.classes, inputs.CURRENT)
        values = metrics(scores, self._calibrated(scores), predicted, wanted)
        return self.bands.bands(values, scores.shape[0])


def fit_classifier_estimator(probabilities: ArrayLike, labels: ArrayLike | None,
                             classes: Sequence[object],
                             prediction: ArrayLike | None = None) -> ClassifierEstimator:
    """Fit CBPE on the labelled reference, once.

    ``probabilities``: binary, one column (or a 1-D array) with the positive class's
    probability, and ``classes`` = (negative, positive); multiclass, an (n, k) array with one
    column per class in the order of ``classes`` (rows need not sum exactly to 1; two
    columns for two classes are estimated as multiclass, with ``MULTICLASS_METRICS``).
    ``labels``: the reference's labels, matched to ``classes`` as they are or as text; rows
    without a label are left out. ``prediction``: the model's predicted classes, when the
    monitor has a prediction column (else argmax, or ``p >= 0.5``).

    Raises ``EstimationInputError`` for a reference without labels or with one class, fewer
    than ``MIN_REFERENCE_ROWS`` labelled rows or ``MIN_CLASS_ROWS`` of some class, and
    probabilities that are missing or outside [0, 1].
    """
    classes = tuple(classes)
    if len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
        raise inputs.EstimationInputError(
            f"{inputs.PROBABILITY}: a classifier needs two or more distinct classes, got "
            f"{[str(c) for c in classes]}")
    scores = inputs.probabilities(probabilities, len(classes), inputs.REFERENCE)
    present = inputs.labelled(labels, scores.shape[0])
    assert labels is not None
    truth = inputs.class_indices(np.asarray(labels, dtype=object)[present], classes,
                                 inputs.TARGET, inputs.REFERENCE)
    predicted = _predicted(scores, prediction, classes, inputs.REFERENCE)[present]
    scores = scores[present]
    inputs.enough_rows(scores.shape[0])
    counts = np.bincount(truth, minlength=len(classes))
    if np.count_nonzero(counts) < 2:
        raise inputs.EstimationInputError(
            f"{inputs.TARGET}: every labelled reference row is of one class "
            f"({classes[int(np.argmax(counts))]}); estimation needs a reference with every "
            "class the model predicts")
    if counts.min() < inputs.MIN_CLASS_ROWS:
        few = [str(classes[c]) for c in np.flatnonzero(counts < inputs.MIN_CLASS_ROWS)]
        raise inputs.EstimationInputError(
            f"{inputs.REFERENCE}: classes {few} have fewer than {inputs.MIN_CLASS_ROWS} "
            "labelled rows; calibration needs a larger labelled reference")
    onehot = np.eye(len(classes))[truth]
    fit_rows = np.arange(scores.shape[0])
    if fit_rows.size > MAX_FIT_ROWS:
        fit_rows = np.sort(np.random.default_rng(17).choice(fit_rows, MAX_FIT_ROWS,
                                                            replace=False))
    from sklearn.isotonic import IsotonicRegression

    columns = [1] if scores.shape[1] == 1 else range(len(classes))
    calibrators = []
    for column, label in enumerate(columns):
        calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        calibrator.fit(scores[fit_rows, column], onehot[fit_rows, label])
        calibrators.append(calibrator)

    def realized(rows: NDArray[np.intp]) -> dict[str, float]:
        return metrics(scores[rows], onehot[rows], predicted[rows])

    return ClassifierEstimator(classes, tuple(calibrators),
                               SamplingBands(realized, scores.shape[0], (0.0, 1.0)))
