"""Model health without labels: performance estimated from the window (CBPE for
classifiers, DLE for regression) and confidence figures from the model's own probabilities.

Part of ``stats`` (third stop on the data line), between the fitted reference profile and
``evaluation``: an estimator is fitted once on the labelled reference and then turns a
window's probabilities (or features and predictions) into estimated metrics, each with the
band that sampling alone would give for a window of that size; ``confidence`` gives a
window's mean top-class probability, the share of rows below a cutoff and the share of
rows predicted as each class. Numbers only: whether a figure breaches a bound is
``evaluation``'s call. Bad input raises ``EstimationInputError`` or
``ConfidenceInputError`` naming the spec field to fix; nothing here guesses.
"""

from __future__ import annotations

from modelmon.stats.estimation.bands import BAND_WIDTH, Estimate
from modelmon.stats.estimation.cbpe import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    ClassifierEstimator,
    fit_classifier_estimator,
)
from modelmon.stats.estimation.confidence import (
    Confidence,
    ConfidenceInputError,
    binary_confidence,
    class_confidence,
)
from modelmon.stats.estimation.dle import (
    REGRESSION_METRICS,
    RegressionEstimator,
    fit_regression_estimator,
)
from modelmon.stats.estimation.inputs import (
    MIN_CLASS_ROWS,
    MIN_REFERENCE_ROWS,
    EstimationInputError,
)

__all__ = [
    "BAND_WIDTH",
    "BINARY_METRICS",
    "MIN_CLASS_ROWS",
    "MIN_REFERENCE_ROWS",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "ClassifierEstimator",
    "Confidence",
    "ConfidenceInputError",
    "Estimate",
    "EstimationInputError",
    "RegressionEstimator",
    "binary_confidence",
    "class_confidence",
    "fit_classifier_estimator",
    "fit_regression_estimator",
]
