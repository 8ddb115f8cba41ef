"""Direct loss estimation (DLE) for regression models.

Part of ``stats.estimation`` (``stats`` on the data line, between the fitted reference
profile and ``evaluation``). Fitted once on the labelled reference, it estimates a window's
mae and rmse from its features and predictions alone.

Method. Two loss models learn, from the reference's features and the model's prediction,
the expected absolute error ``|y - ŷ|`` and the expected squared error ``(y - ŷ)²`` of a row.
Each is a linear trend plus trees:

- the trend: a ridge regression of the loss on every numeric input (the features and the
  prediction) and its distance from the reference's median, each scaled by its reference
  standard deviation (missing values at the median). It carries the loss beyond the
  reference's range, where trees stay flat at the edge's value: a window that moves into
  the region where errors grow gets a loss that keeps growing (on
  ``benchmarks/estimation.py``'s data, the error of the estimate under the harmful shift
  fell by 15-35% against trees alone, and stayed within the spread between draws elsewhere).
  A window's inputs are clipped to the reference's range widened by its own width on each
  side first, so an absurd value cannot drive the trend anywhere;
- the trees: scikit-learn's ``HistGradientBoostingRegressor`` on what the trend leaves
  (squared-error loss, so trend plus trees predict the conditional mean of the loss; fixed
  ``random_state``; the number of rounds is the one with the best loss on a held-out tenth
  of the rows, and the trees kept are refitted on all of them with that many rounds).

Numeric features are used as they are (missing values are native to the model); any other
column becomes ordinal codes of its reference categories, passed as categorical features to
the model's native categorical support (the ``MAX_CATEGORIES`` most frequent; rarer and
unseen values count as missing). Estimated mae is the window's mean predicted absolute
error; estimated rmse is the root of its mean predicted squared error, each row's prediction
clipped at 0 first.

Learning rate ``LEARNING_RATE`` (0.5; scikit-learn's default is 0.1): an estimate costs one
walk of every tree per row, so the number of trees is the price of a window, and with the
trend carrying the smooth part the trees have little left to learn. On
``benchmarks/estimation.py``'s regression data (twelve draws) the best round came at 3-4
trees a model at 0.5, 6-9 at 0.3 and about 25 at 0.1, with the estimates' mean absolute
error per scenario and metric the same within the spread between draws.

Assumption: only the inputs shift (the error given the features and prediction stays as
on the reference). Under concept shift the estimate is wrong and nothing here can tell.

Bounded work: the loss models are fitted once, on at most ``MAX_FIT_ROWS`` reference rows
and at most ``MAX_ITER`` boosting rounds; an estimate is one prediction over the window by
each model whose metric is asked for, plus the bands' reference samples once per window size
(see ``bands``). Fits and predictions run with OpenMP limited to one thread: the operator
already checks monitors in parallel, and on a shared, busy node the model's own threads
oversubscribe the cores (a fit measured 25x slower with two threads than with one on a
loaded two-core machine). The thread limit goes through one ``ThreadpoolController`` kept
for the process: building one scans the loaded libraries, 2.7 ms a time, more than a
window's prediction.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import ThreadpoolController

from modelmon.stats.estimation import inputs
from modelmon.stats.estimation.bands import Estimate, SamplingBands

if TYPE_CHECKING:  # scikit-learn's ensemble is imported by the first fit, not by a check
    from sklearn.ensemble import HistGradientBoostingRegressor

REGRESSION_METRICS = ("mae", "rmse")
#: Most reference rows the loss models are fitted on (a seeded sample beyond it).
MAX_FIT_ROWS = 100_000
#: Boosting rounds at most per loss model (early stopping usually ends sooner).
MAX_ITER = 200
#: Ridge penalty of the linear trend (its inputs are standardised, so this is mild).
TREND_RIDGE = 1.0
#: Shrinkage of each boosting round (see the module's docstring for why not the default 0.1).
LEARNING_RATE = 0.5
#: Categories of a column kept as such (the model's native limit is 255 bins less one for
#: missing values).
MAX_CATEGORIES = 254
_SEED = 17


@dataclass(frozen=True, slots=True)
class _Encoding:
    """How the reference's features become the loss models' matrix."""

    columns: tuple[str, ...]
    categories: dict[str, pd.Index]
    """Kept categories of each non-numeric column, most frequent first."""

    def matrix(self, features: pd.DataFrame, prediction: NDArray[np.float64],
               where: str) -> NDArray[np.float64]:
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise inputs.EstimationInputError(
                f"{where}: lacks the feature columns {missing[:5]} the estimator was fitted "
                "on; give the window the reference's features")
        out = np.empty((len(features), len(self.columns) + 1))
        for position, name in enumerate(self.columns):
            column = features[name]
            if name in self.categories:
                codes = self.categories[name].get_indexer(pd.Index(column.astype(str)))
                out[:, position] = np.where(codes >= 0, codes, np.nan)
            elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                out[:, position] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                out[:, position] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        out[:, -1] = prediction  # the model's prediction is the last feature
        return out

    def categorical_mask(self) -> list[bool]:
        return [name in self.categories for name in self.columns] + [False]


def _encoding(features: pd.DataFrame) -> _Encoding:
    categories = {}
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            counts = column.dropna().astype(str).value_counts(sort=True)
            categories[str(name)] = pd.Index(counts.index[:MAX_CATEGORIES])
    return _Encoding(tuple(str(c) for c in features.columns), categories)


@dataclass(frozen=True, slots=True)
class _Trend:
    """The linear part of the loss models: which columns of the matrix it reads (the numeric
    ones and the prediction) and how it scales and clips them."""

    columns: NDArray[np.intp]
    median: NDArray[np.float64]
    scale: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]

    def inputs(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        values = matrix[:, self.columns]
        values = np.where(np.isnan(values), self.median, values)
        values = np.clip(values, self.low, self.high)
        centred = (values - self.median) / self.scale
        return np.column_stack([centred, np.abs(centred)])


def _trend(matrix: NDArray[np.float64], encoding: _Encoding) -> _Trend:
    columns = np.flatnonzero(~np.asarray(encoding.categorical_mask()))
    values = matrix[:, columns]
    median = np.nanmedian(values, axis=0)
    median = np.where(np.isnan(median), 0.0, median)
    low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    low, high = np.where(np.isnan(low), 0.0, low), np.where(np.isnan(high), 0.0, high)
    width = high - low
    scale = np.nanstd(values, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return _Trend(columns, median, scale, low - width, high + width)


@dataclass(frozen=True, slots=True)
class _LossModel:
    """One loss's model: the trend's coefficients (read as a dot product: scikit-learn's
    ``predict`` would check its input again, costing more than the product) and the trees
    on what the trend leaves."""

    coefficients: NDArray[np.float64]
    intercept: float
    trees: HistGradientBoostingRegressor

    def predict(self, matrix: NDArray[np.float64], trend_inputs: NDArray[np.float64]
                ) -> NDArray[np.float64]:
        out: NDArray[np.float64] = (trend_inputs @ self.coefficients + self.intercept
                                    + self.trees.predict(matrix))
        return out


def _numbers(values: ArrayLike, field: str, where: str, rows: int) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise inputs.EstimationInputError(
            f"{field}: the {where}'s values are not numbers; a regression model's "
            "predictions and labels are numbers") from None
    if array.shape[0] != rows:
        raise inputs.EstimationInputError(
            f"{field}: the {where} has {array.shape[0]} values for {rows} rows of features")
    return array


def _prediction(values: ArrayLike, where: str, rows: int) -> NDArray[np.float64]:
    array = _numbers(values, inputs.PREDICTION, where, rows)
    if rows == 0:
        raise inputs.EstimationInputError(f"{where}: has no rows to estimate from")
    if not np.isfinite(array).all():
        raise inputs.EstimationInputError(
            f"{inputs.PREDICTION}: {int((~np.isfinite(array)).sum())} row(s) of the {where} "
            "have missing or infinite predictions; fill or drop them before estimating")
    return array


def _model() -> HistGradientBoostingRegressor:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=MAX_ITER, learning_rate=LEARNING_RATE, early_stopping=True,
        validation_fraction=0.1, n_iter_no_change=10, random_state=_SEED)


@cache
def _threads() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[object]:
    """A context in which OpenMP (the loss models' fit and predict) runs one thread."""
    limiter: AbstractContextManager[object] = _threads().limit(limits=1, user_api="openmp")
    return limiter


@dataclass(frozen=True, slots=True)
class RegressionEstimator:
    """DLE fitted on one reference: its loss models and the bands' reference samples."""

    encoding: _Encoding
    trend: _Trend
    absolute: _LossModel
    squared: _LossModel
    bands: SamplingBands

    def estimate(self, features: pd.DataFrame, prediction: ArrayLike,
                 wanted: Collection[str] | None = None) -> dict[str, Estimate]:
        """Estimated mae and rmse of a window (or those of them in ``wanted``), each with its
        sampling band for a window of this many rows. Raises ``EstimationInputError`` for
        missing feature columns or missing predictions."""
        predicted = _prediction(prediction, inputs.CURRENT, len(features))
        matrix = self.encoding.matrix(features, predicted, inputs.CURRENT)
        trend_inputs = self.trend.inputs(matrix)
        values = {}
        with _one_thread():
            if wanted is None or "mae" in wanted:
                values["mae"] = _mean_loss(self.absolute.predict(matrix, trend_inputs))
            if wanted is None or "rmse" in wanted:
                values["rmse"] = math.sqrt(_mean_loss(
                    self.squared.predict(matrix, trend_inputs)))
        return self.bands.bands(values, len(features))


def _mean_loss(predicted: NDArray[np.float64]) -> float:
    return float(np.mean(np.clip(predicted, 0.0, None)))


def fit_regression_estimator(features: pd.DataFrame, prediction: ArrayLike,
                             labels: ArrayLike | None) -> RegressionEstimator:
    """Fit DLE on the labelled reference, once.

    ``features``: the reference's feature columns (the model's inputs); ``prediction``: the
    model's predictions; ``labels``: the true values, rows without one left out.

    Raises ``EstimationInputError`` for a reference without labels, fewer than
    ``MIN_REFERENCE_ROWS`` labelled rows, and predictions or labels that are missing,
    infinite or not numbers.
    """
    rows = len(features)
    predicted = _prediction(prediction, inputs.REFERENCE, rows)
    present = inputs.labelled(labels, rows)
    assert labels is not None
    truth = _numbers(pd.to_numeric(pd.Series(np.asarray(labels, dtype=object)),
                                   errors="coerce"), inputs.TARGET, inputs.REFERENCE, rows)
    bad = present & ~np.isfinite(truth)
    if bad.any():
        raise inputs.EstimationInputError(
            f"{inputs.TARGET}: {int(bad.sum())} labelled row(s) of the reference are not "
            "finite numbers; a regression target is numeric")
    inputs.enough_rows(int(present.sum()))
    frame = features.loc[present].reset_index(drop=True)
    error = truth[present] - predicted[present]
    encoding = _encoding(frame)
    matrix = encoding.matrix(frame, predicted[present], inputs.REFERENCE)
    from sklearn.linear_model import Ridge  # imported by the first fit, not by every check

    fit_rows = np.random.default_rng(_SEED).permutation(len(error))[:MAX_FIT_ROWS]
    fit_matrix = matrix[fit_rows]
    trend = _trend(fit_matrix, encoding)
    trend_inputs = trend.inputs(fit_matrix)
    mask = encoding.categorical_mask()
    models = []
    for target in (np.abs(error[fit_rows]), error[fit_rows] ** 2):
        linear = Ridge(alpha=TREND_RIDGE).fit(trend_inputs, target)
        coefficients = np.asarray(linear.coef_, dtype=np.float64)
        intercept = float(linear.intercept_)
        rest = target - (trend_inputs @ coefficients + intercept)
        trees = _model().set_params(categorical_features=mask if any(mask) else None)
        with _one_thread():
            # Early stopping on a held-out tenth finds the round with the best held-out loss
            # (it runs n_iter_no_change rounds past it); the trees kept are fitted with that
            # many rounds on every row.
            scores = trees.fit(fit_matrix, rest).validation_score_
            rounds = max(1, int(np.argmax(scores)))  # scores[0]: before the first round
            trees.set_params(max_iter=rounds, early_stopping=False)
            trees.fit(fit_matrix, rest)
        models.append(_LossModel(coefficients, intercept, trees))

    def realized(sample: NDArray[np.intp]) -> dict[str, float]:
        chosen = error[sample]
        return {"mae": float(np.mean(np.abs(chosen))),
                "rmse": math.sqrt(float(np.mean(chosen ** 2)))}

    return RegressionEstimator(encoding, trend, models[0], models[1],
                               SamplingBands(realized, len(error), (0.0, math.inf)))
