"""CBPE against known ground truth: a logistic model whose true probabilities are known, shown
to the estimator through an overconfident model (so the isotonic calibration has work to
do), under covariate shifts that change the mix of easy and hard rows, and under a concept
shift that estimation cannot see."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn import metrics as skm

from modelmon.stats.estimation import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    ClassifierEstimator,
    fit_classifier_estimator,
)
from modelmon.stats.estimation.cbpe import expected_auc, metrics

REFERENCE_ROWS = 20_000
WINDOW_ROWS = 2_000
WINDOWS = 8
#: The window shifts: the spread and centre of the feature that decides the class. A narrow
#: window near the boundary is hard (accuracy falls), a wide one far from it is easy.
SHIFTS = {"none": (0.0, 1.5), "hard": (0.0, 0.5), "easy": (1.0, 2.5)}

Arrays = tuple[NDArray[np.float64], NDArray[np.bool_]]


def _binary(rng: np.random.Generator, rows: int, centre: float, spread: float,
            flipped: bool = False) -> Arrays:
    """The model's (overconfident) probabilities and labels drawn from the true ones."""
    x = np.column_stack([rng.normal(centre, spread, rows), rng.normal(0.0, 1.0, rows)])
    logit = 1.5 * x[:, 0] - 0.8 * x[:, 1]
    truth = 1.0 / (1.0 + np.exp(-logit))
    labels = rng.random(rows) < (1.0 - truth if flipped else truth)
    return 1.0 / (1.0 + np.exp(-1.8 * logit)), labels


def _realized(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> dict[str, float]:
    pred = scores >= 0.5
    return {"accuracy": skm.accuracy_score(labels, pred),
            "precision": skm.precision_score(labels, pred, zero_division=0),
            "recall": skm.recall_score(labels, pred, zero_division=0),
            "f1": skm.f1_score(labels, pred, zero_division=0),
            "rocAuc": skm.roc_auc_score(labels, scores)}


@pytest.fixture(scope="module")
def binary() -> ClassifierEstimator:
    scores, labels = _binary(np.random.default_rng(1), REFERENCE_ROWS, *SHIFTS["none"])
    return fit_classifier_estimator(scores, labels, (False, True))


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_binary_estimates_track_the_realized_metrics(binary: ClassifierEstimator,
                                                     shift: str) -> None:
    # A window of 2,000 rows has a standard error near 0.01 for accuracy and f1 and below
    # that for rocAuc; averaged over 8 windows the sampling error is about 0.004, so 0.02
    # leaves room for the calibration's own error and fails a biased estimate.
    rng = np.random.default_rng(2)
    errors: dict[str, list[float]] = {name: [] for name in BINARY_METRICS}
    for _ in range(WINDOWS):
        scores, labels = _binary(rng, WINDOW_ROWS, *SHIFTS[shift])
        estimated = binary.estimate(scores)
        assert set(estimated) == set(BINARY_METRICS)
        for name, value in _realized(scores, labels).items():
            errors[name].append(estimated[name].value - value)
    for name, seen in errors.items():
        assert abs(np.mean(seen)) < 0.02, (shift, name, np.mean(seen))
        assert np.mean(np.abs(seen)) < 0.035, (shift, name, np.mean(np.abs(seen)))


def test_estimated_accuracy_follows_the_mix_of_easy_and_hard_rows(
        binary: ClassifierEstimator) -> None:
    rng = np.random.default_rng(3)
    accuracy = {shift: binary.estimate(_binary(rng, WINDOW_ROWS, *SHIFTS[shift])[0])
                ["accuracy"].value for shift in SHIFTS}
    assert accuracy["hard"] < accuracy["none"] - 0.1 < accuracy["easy"] - 0.1


def test_calibration_corrects_an_overconfident_model(binary: ClassifierEstimator) -> None:
    # The model says sigmoid(1.8 z) where the truth is sigmoid(z): raw probabilities taken
    # at face value would claim far more accuracy than the hard window has.
    scores, labels = _binary(np.random.default_rng(4), 10_000, *SHIFTS["hard"])
    naive = np.mean(np.where(scores >= 0.5, scores, 1.0 - scores))
    realized = skm.accuracy_score(labels, scores >= 0.5)
    estimated = binary.estimate(scores)["accuracy"].value
    assert naive - realized > 0.05
    assert abs(estimated - realized) < 0.02


def test_a_calibrated_model_is_left_nearly_as_it_is() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.5, REFERENCE_ROWS)
    truth = 1.0 / (1.0 + np.exp(-x))
    labels = rng.random(REFERENCE_ROWS) < truth
    estimator = fit_classifier_estimator(truth, labels, (0, 1))
    calibrated = estimator.calibrate(truth)[:, 1]
    assert np.mean(np.abs(calibrated - truth)) < 0.03
    # On its own reference the estimate equals the realized accuracy (the isotonic steps'
    # calibrated probabilities sum to their labels).
    realized = skm.accuracy_score(labels, truth >= 0.5)
    assert abs(estimator.estimate(truth)["accuracy"].value - realized) < 0.005


def test_concept_shift_is_invisible_to_the_estimate(binary: ClassifierEstimator) -> None:
    # The limit of CBPE: when the relation between inputs and labels flips, the
    # probabilities look as before, so the estimate stays where it was while the model
    # fails. This test asserts that the estimate is wrong.
    scores, labels = _binary(np.random.default_rng(6), WINDOW_ROWS, *SHIFTS["none"],
                             flipped=True)
    estimated = binary.estimate(scores)
    realized = _realized(scores, labels)
    for name in ("accuracy", "rocAuc"):
        assert estimated[name].value - realized[name] > 0.3
        assert realized[name] < estimated[name].lower


def test_a_prediction_column_sets_the_predicted_class() -> None:
    rng = np.random.default_rng(7)
    scores, labels = _binary(rng, REFERENCE_ROWS, *SHIFTS["none"])
    estimator = fit_classifier_estimator(scores, labels.astype(int), (0, 1),
                                         prediction=(scores >= 0.3).astype(int))
    window, truth = _binary(rng, 5_000, *SHIFTS["hard"])
    predicted = window >= 0.3
    estimated = estimator.estimate(window, prediction=predicted.astype(int))
    default = estimator.estimate(window)
    assert abs(estimated["recall"].value - skm.recall_score(truth, predicted)) < 0.03
    assert estimated["recall"].value - default["recall"].value > 0.05


# Multiclass: three classes from a softmax of known logits; the model is overconfident and
# its probabilities are rounded, so rows do not sum exactly to 1.
CENTRES = np.array([[0.0, 0.0], [1.2, 1.2], [-1.5, 1.5]])


def _multiclass(rng: np.random.Generator, rows: int, centre: float,
                spread: float) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    x = rng.normal(0.0, spread, (rows, 2)) + np.array([centre, centre])
    logits = -0.9 * ((x[:, None, :] - CENTRES[None, :, :]) ** 2).sum(axis=2)
    truth = np.exp(logits - logits.max(axis=1, keepdims=True))
    truth /= truth.sum(axis=1, keepdims=True)
    labels = (rng.random(rows)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    model = truth ** 1.6
    model /= model.sum(axis=1, keepdims=True)
    return np.round(model, 3), labels


def _realized_multiclass(scores: NDArray[np.float64],
                         labels: NDArray[np.int64]) -> dict[str, float]:
    pred = np.argmax(scores, axis=1)
    out = {"accuracy": skm.accuracy_score(labels, pred),
           "rocAuc": skm.roc_auc_score(labels, scores / scores.sum(axis=1, keepdims=True),
                                       multi_class="ovr", average="macro")}
    for name, scorer in (("precision", skm.precision_score), ("recall", skm.recall_score),
                         ("f1", skm.f1_score)):
        for average in ("macro", "weighted"):
            out[f"{name}{average.title()}"] = scorer(labels, pred, average=average,
                                                     zero_division=0)
    return out


@pytest.mark.parametrize(("centre", "spread"), [(0.0, 1.5), (0.6, 0.6)])
def test_multiclass_estimates_track_the_realized_metrics(centre: float, spread: float) -> None:
    rng = np.random.default_rng(8)
    scores, labels = _multiclass(rng, REFERENCE_ROWS, 0.0, 1.5)
    estimator = fit_classifier_estimator(scores, np.array(["a", "b", "c"])[labels],
                                         ["a", "b", "c"])
    errors: dict[str, list[float]] = {name: [] for name in MULTICLASS_METRICS}
    for _ in range(WINDOWS):
        window, truth = _multiclass(rng, WINDOW_ROWS, centre, spread)
        estimated = estimator.estimate(window)
        assert set(estimated) == set(MULTICLASS_METRICS)
        for name, value in _realized_multiclass(window, truth).items():
            errors[name].append(estimated[name].value - value)
    for name, seen in errors.items():
        assert abs(np.mean(seen)) < 0.025, (name, np.mean(seen))


def test_labels_as_weights_give_scikit_learns_metrics() -> None:
    # With one-hot labels in place of calibrated probabilities the expected confusion matrix
    # is the realized one: the formulas are scikit-learn's, ties in the scores included.
    rng = np.random.default_rng(9)
    scores, labels = _binary(rng, 3_000, *SHIFTS["none"])
    scores = np.round(scores, 2)
    got = metrics(scores[:, None], np.eye(2)[labels.astype(int)],
                  (scores >= 0.5).astype(np.intp))
    for name, value in _realized(scores, labels).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    multi, truth = _multiclass(rng, 3_000, 0.0, 1.5)
    got = metrics(multi, np.eye(3)[truth], np.argmax(multi, axis=1).astype(np.intp))
    expected = _realized_multiclass(multi, truth)
    for name in MULTICLASS_METRICS:
        if name != "rocAuc":  # scikit-learn ranks the renormalised rows
            assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_expected_auc_is_the_area_under_the_expected_roc_curve() -> None:
    rng = np.random.default_rng(10)
    scores = np.round(rng.random(60), 1)  # many ties
    weights = rng.random(60)
    # Expected true and false positives at each threshold, high to low, then the trapezoids.
    thresholds = np.unique(scores)[::-1]
    tpr = np.r_[0.0, [weights[scores >= t].sum() for t in thresholds]] / weights.sum()
    fpr = np.r_[0.0, [(1 - weights[scores >= t]).sum() for t in thresholds]] / (1 - weights).sum()
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert expected_auc(scores, weights) == pytest.approx(area, rel=1e-12)


def test_only_the_metrics_asked_for_are_estimated() -> None:
    rng = np.random.default_rng(12)
    scores, labels = _binary(rng, 5_000, *SHIFTS["none"])
    estimator = fit_classifier_estimator(scores, labels, (False, True))
    window = _binary(rng, 1_000, *SHIFTS["hard"])[0]
    every = estimator.estimate(window)
    some = estimator.estimate(window, wanted={"f1", "accuracy"})
    assert set(some) == {"f1", "accuracy"}
    assert all(some[name] == every[name] for name in some)


def test_same_inputs_give_the_same_estimates() -> None:
    rng = np.random.default_rng(11)
    scores, labels = _binary(rng, 5_000, *SHIFTS["none"])
    window = _binary(rng, 1_000, *SHIFTS["hard"])[0]
    first = fit_classifier_estimator(scores, labels, (False, True)).estimate(window)
    second = fit_classifier_estimator(scores.copy(), labels.copy(), (False, True))
    assert second.estimate(window) == first


def test_calibration_reads_the_isotonic_curve_as_scikit_learn_does() -> None:
    """The estimator interpolates the fitted curve itself; it must equal ``predict``,
    inside the reference's range and clipped outside it."""
    rng = np.random.default_rng(31)
    scores = 0.2 + 0.6 * rng.random(3000)  # the reference spans [0.2, 0.8] only
    labels = (rng.random(3000) < scores ** 1.5).astype(int)
    estimator = fit_classifier_estimator(scores, labels, (0, 1))
    probe = np.concatenate([rng.random(500), [0.0, 0.2, 0.8, 1.0]])
    (calibrator,) = estimator.calibrators
    want = calibrator.predict(probe)
    assert estimator.calibrate(probe)[:, 1] == pytest.approx(want, abs=1e-12)
