"""Direct loss estimation (DLE) for regression models.

Part of ``stats.estimation`` (``stats`` on the data line, between the fitted reference
profile and ``evaluation``). Fitted once on the labelled reference, it estimates a window's
mae and rmse from its features and predictions alone.

Method. Two loss models learn, from the reference's features and the model's prediction,
the expected absolute error ``|y - ŷ|`` and the expected squared error ``(y - ŷ)²`` of a row:
scikit-learn's ``HistGradientBoostingRegressor`` (squared-error loss, so each predicts the
conditional mean of its loss; fixed ``random_state``; early stopping on a held-out tenth of
its training rows). Numeric features are used as they are (missing values are native to
the model); any other column becomes ordinal codes of its reference categories, passed as
categorical features to the model's native categorical support (the ``MAX_CATEGORIES`` most
frequent; rarer and unseen values count as missing).

Cross-fitting: the reference is split in two halves at random (seeded) and each loss is
fitted twice, once per half. ``reference_estimate`` scores each half with the models that
did not see it, an honest view of how well the loss models do, not one judged on the rows
they were fitted on. A window is scored with the mean of both halves' models. Estimated mae
is the mean predicted absolute error; estimated rmse is the root of the mean predicted
squared error, each row's prediction clipped at 0 first.

Assumption: only the inputs shift (the error given the features and prediction stays as
on the reference). Under concept shift the estimate is wrong and nothing here can tell.

Bounded work: the loss models are fitted once, on at most ``MAX_FIT_ROWS`` reference rows
and at most ``MAX_ITER`` boosting rounds; an estimate is one prediction per model over the
window, plus the bands' reference samples once per window size (see ``bands``). Fits and
predictions run with OpenMP limited to one thread: the operator already checks monitors in
parallel, and on a shared, busy node the model's own threads oversubscribe the cores (a fit
measured 25x slower with two threads than with one on a loaded two-core machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from modelmon.stats.estimation import inputs
from modelmon.stats.estimation.bands import Estimate, SamplingBands

if TYPE_CHECKING:  # scikit-learn's ensemble is imported by the first fit, not by a check
    from sklearn.ensemble import HistGradientBoostingRegressor

REGRESSION_METRICS = ("mae", "rmse")
#: Most reference rows the loss models are fitted on (a seeded sample beyond it).
MAX_FIT_ROWS = 100_000
#: Boosting rounds at most per loss model (early stopping usually ends sooner).
MAX_ITER = 200
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
        max_iter=MAX_ITER, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=10, random_state=_SEED)


@dataclass(frozen=True, slots=True)
class RegressionEstimator:
    """DLE fitted on one reference: its loss models and the bands' reference samples."""

    encoding: _Encoding
    absolute: tuple[HistGradientBoostingRegressor, ...]
    squared: tuple[HistGradientBoostingRegressor, ...]
    bands: SamplingBands
    reference_estimate: dict[str, float]
    """mae and rmse of the reference estimated by the models that did not see each row."""

    def estimate(self, features: pd.DataFrame, prediction: ArrayLike) -> dict[str, Estimate]:
        """Estimated mae and rmse of a window, each with its sampling band for a window of
        this many rows. Raises ``EstimationInputError`` for missing feature columns or
        missing predictions."""
        predicted = _prediction(prediction, inputs.CURRENT, len(features))
        matrix = self.encoding.matrix(features, predicted, inputs.CURRENT)
        with threadpool_limits(limits=1, user_api="openmp"):
            absolute = np.mean([m.predict(matrix) for m in self.absolute], axis=0)
            squared = np.mean([m.predict(matrix) for m in self.squared], axis=0)
        values = _losses(absolute, squared)
        return self.bands.bands(values, len(features))


def _losses(absolute: NDArray[np.float64], squared: NDArray[np.float64]) -> dict[str, float]:
    return {"mae": float(np.mean(np.clip(absolute, 0.0, None))),
            "rmse": math.sqrt(float(np.mean(np.clip(squared, 0.0, None))))}


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
    rng = np.random.default_rng(_SEED)
    order = rng.permutation(len(error))[:MAX_FIT_ROWS]
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    mask = encoding.categorical_mask()
    absolute: list[HistGradientBoostingRegressor] = []
    squared: list[HistGradientBoostingRegressor] = []
    out_of_fold_abs, out_of_fold_sq = np.empty(len(order)), np.empty(len(order))
    for fit, (train, held) in enumerate((halves, halves[::-1])):
        for target, models, held_out in ((np.abs(error), absolute, out_of_fold_abs),
                                         (error ** 2, squared, out_of_fold_sq)):
            model = _model().set_params(categorical_features=mask if any(mask) else None)
            with threadpool_limits(limits=1, user_api="openmp"):
                model.fit(matrix[train], target[train])
                start = 0 if fit == 1 else len(halves[0])
                held_out[start:start + len(held)] = model.predict(matrix[held])
            models.append(model)
    reference_estimate = _losses(out_of_fold_abs, out_of_fold_sq)

    def realized(sample: NDArray[np.intp]) -> dict[str, float]:
        chosen = error[sample]
        return {"mae": float(np.mean(np.abs(chosen))),
                "rmse": math.sqrt(float(np.mean(chosen ** 2)))}

    return RegressionEstimator(encoding, tuple(absolute), tuple(squared),
                               SamplingBands(realized, len(error), (0.0, math.inf)),
                               reference_estimate)
