"""Bad input to the estimators raises EstimationInputError naming the spec field to fix;
nothing is estimated from it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.estimation import (
    MIN_CLASS_ROWS,
    MIN_REFERENCE_ROWS,
    ClassifierEstimator,
    EstimationInputError,
    fit_classifier_estimator,
    fit_regression_estimator,
)

ROWS = 1_000


def _reference(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random(ROWS)
    return scores, rng.random(ROWS) < scores


@pytest.fixture(scope="module")
def fitted() -> ClassifierEstimator:
    return fit_classifier_estimator(*_reference(), (0, 1))


def _raises(field: str, call: Callable[[], object]) -> str:
    with pytest.raises(EstimationInputError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(field), message
    return message


def test_the_error_is_a_value_error() -> None:
    assert issubclass(EstimationInputError, ValueError)


@pytest.mark.parametrize("bad", [1.2, -0.1, np.nan, np.inf])
def test_reference_probabilities_outside_zero_one_or_missing(bad: float) -> None:
    scores, labels = _reference()
    scores[7] = bad
    _raises("columns.predictionProbability",
            lambda: fit_classifier_estimator(scores, labels, (0, 1)))


@pytest.mark.parametrize("bad", [1.5, -2.0, np.nan])
def test_window_probabilities_outside_zero_one_or_missing(fitted: ClassifierEstimator,
                                                          bad: float) -> None:
    window = np.full(50, 0.3)
    window[3] = bad
    message = _raises("columns.predictionProbability", lambda: fitted.estimate(window))
    assert "current" in message


def test_probabilities_that_are_not_numbers(fitted: ClassifierEstimator) -> None:
    _raises("columns.predictionProbability", lambda: fitted.estimate(["high", "low"]))


def test_an_empty_window(fitted: ClassifierEstimator) -> None:
    _raises("current", lambda: fitted.estimate(np.array([])))


def test_a_reference_without_labels() -> None:
    scores, _ = _reference()
    _raises("columns.target", lambda: fit_classifier_estimator(scores, None, (0, 1)))
    _raises("columns.target",
            lambda: fit_classifier_estimator(scores, np.full(ROWS, np.nan), (0, 1)))


def test_a_reference_with_one_class() -> None:
    scores, _ = _reference()
    message = _raises("columns.target",
                      lambda: fit_classifier_estimator(scores, np.ones(ROWS), (0, 1)))
    assert "one class" in message


def test_too_few_reference_rows() -> None:
    scores, labels = _reference()
    rows = MIN_REFERENCE_ROWS - 1
    _raises("reference",
            lambda: fit_classifier_estimator(scores[:rows], labels[:rows], (0, 1)))
    # Enough rows, but the unlabelled ones do not count.
    partial = labels.astype(object)
    partial[rows:] = None
    _raises("reference", lambda: fit_classifier_estimator(scores, partial, (0, 1)))


def test_too_few_rows_of_a_class() -> None:
    scores, _ = _reference()
    labels = np.zeros(ROWS, dtype=int)
    labels[: MIN_CLASS_ROWS - 1] = 1
    message = _raises("reference", lambda: fit_classifier_estimator(scores, labels, (0, 1)))
    assert "['1']" in message


def test_labels_that_are_no_class() -> None:
    scores, labels = _reference()
    named = np.where(labels, "yes", "no")
    message = _raises("columns.target",
                      lambda: fit_classifier_estimator(scores, named, ("no", "maybe")))
    assert "yes" in message


def test_partly_labelled_references_use_their_labelled_rows() -> None:
    scores, labels = _reference()
    partial = labels.astype(object)
    partial[::3] = None
    estimator = fit_classifier_estimator(scores, partial, (False, True))
    assert 0.0 < estimator.estimate(scores)["accuracy"].value < 1.0


def test_predictions_that_are_no_class(fitted: ClassifierEstimator) -> None:
    _raises("columns.prediction",
            lambda: fitted.estimate(np.full(20, 0.4), prediction=np.full(20, 2)))
    _raises("columns.prediction",
            lambda: fitted.estimate(np.full(20, 0.4), prediction=np.zeros(19)))


def test_multiclass_probabilities_of_the_wrong_shape() -> None:
    rng = np.random.default_rng(1)
    scores = rng.dirichlet(np.ones(3), ROWS)
    labels = np.argmax(scores, axis=1)
    _raises("columns.predictionProbability",
            lambda: fit_classifier_estimator(scores[:, :2], labels, (0, 1, 2)))
    estimator = fit_classifier_estimator(scores, labels, (0, 1, 2))
    _raises("columns.predictionProbability", lambda: estimator.estimate(scores[:, 0]))
    _raises("columns.predictionProbability",
            lambda: fit_classifier_estimator(scores, labels, (0, 0, 1)))


def _regression(rows: int = ROWS) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    features = pd.DataFrame({"x": rng.normal(size=rows)})
    return features, features["x"].to_numpy() * 2, features["x"].to_numpy() * 2 + rng.normal(
        size=rows)


def test_regression_without_labels_or_with_bad_labels() -> None:
    features, prediction, labels = _regression()
    _raises("columns.target", lambda: fit_regression_estimator(features, prediction, None))
    bad = labels.astype(object)
    bad[4] = "high"
    _raises("columns.target", lambda: fit_regression_estimator(features, prediction, bad))


def test_regression_with_missing_predictions() -> None:
    features, prediction, labels = _regression()
    prediction[5] = np.nan
    _raises("columns.prediction", lambda: fit_regression_estimator(features, prediction, labels))


def test_regression_with_too_few_rows() -> None:
    rows = MIN_REFERENCE_ROWS - 1
    _raises("reference", lambda: fit_regression_estimator(*_regression(rows)))


def test_regression_window_without_the_features() -> None:
    features, prediction, labels = _regression(400)
    estimator = fit_regression_estimator(features, prediction, labels)
    _raises("current", lambda: estimator.estimate(features.rename(columns={"x": "y"}),
                                                  prediction))
    _raises("columns.prediction", lambda: estimator.estimate(features, prediction[:-1]))
