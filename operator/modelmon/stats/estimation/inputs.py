"""Checks of what an estimator is given, each failure naming the spec field to fix.

Part of ``stats.estimation`` (``stats`` on the data line): the estimators call these before
they compute anything, so bad input raises ``EstimationInputError`` instead of becoming
numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

#: Fewest labelled reference rows an estimator is fitted on: isotonic calibration (and the
#: loss model of DLE) fitted on fewer follows the noise of a few rows, not the model.
MIN_REFERENCE_ROWS = 100
#: Fewest labelled reference rows of each class: a calibration curve of a class seen fewer
#: times is a guess.
MIN_CLASS_ROWS = 10

PROBABILITY = "columns.predictionProbability"
PREDICTION = "columns.prediction"
TARGET = "columns.target"
REFERENCE = "reference"
CURRENT = "current window"  # the spec's `current`


class EstimationInputError(ValueError):
    """The reference or window cannot give an estimate; the message names the field."""


def probabilities(values: ArrayLike, classes: int, where: str) -> NDArray[np.float64]:
    """Probabilities as an (n, k) array of floats in [0, 1] (binary: one column, the
    positive class's), or ``EstimationInputError`` naming ``columns.predictionProbability``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise EstimationInputError(
            f"{PROBABILITY}: the {where}'s probabilities are not numbers; name the columns "
            "that hold the model's class probabilities") from None
    binary = classes == 2 and (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1))
    if binary:
        array = array.reshape(-1, 1)
    elif array.ndim != 2 or array.shape[1] != classes:
        shape = "x".join(str(s) for s in array.shape)
        raise EstimationInputError(
            f"{PROBABILITY}: the {where} gives probabilities of shape {shape} for {classes} "
            "classes; give one column (the positive class's) for a binary model, or one column "
            "per class, in the order of the classes, for a multiclass model")
    if array.shape[0] == 0:
        raise EstimationInputError(f"{where}: has no rows with probabilities to estimate from")
    bad = ~np.isfinite(array)
    if bad.any():
        raise EstimationInputError(
            f"{PROBABILITY}: {int(bad.any(axis=1).sum())} row(s) of the {where} have missing "
            "or infinite probabilities; fill or drop them before estimating")
    outside = (array < 0.0) | (array > 1.0)
    if outside.any():
        raise EstimationInputError(
            f"{PROBABILITY}: {int(outside.any(axis=1).sum())} row(s) of the {where} have "
            f"probabilities outside [0, 1] (for example {float(array[outside][0])}); name the "
            "columns of probabilities, not scores or logits")
    return array


def class_indices(values: ArrayLike, classes: Sequence[object], field: str,
                  where: str) -> NDArray[np.intp]:
    """Each value's position in ``classes`` (matched as is, else as text); a value that is
    no class raises ``EstimationInputError`` naming ``field``."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)),
                                  use_na_sentinel=False)
    as_is = dict(zip(classes, range(len(classes)), strict=True))  # Python's equality: True == 1
    as_text = {str(c): i for i, c in enumerate(classes)}
    found = [as_is.get(u, as_text.get(str(u), -1)) for u in uniques]
    unknown = [str(u) for u, i in zip(uniques, found, strict=True) if i < 0]
    if unknown:
        raise EstimationInputError(
            f"{field}: the {where} has values {sorted(unknown)[:5]} that are not among the "
            f"classes {[str(c) for c in classes]}; name every class, in the order of the "
            "probability columns")
    return np.asarray(found, dtype=np.intp)[codes]


def labelled(labels: ArrayLike | None, rows: int) -> NDArray[np.bool_]:
    """Which reference rows carry a label; raises when none does or lengths differ."""
    if labels is None:
        raise EstimationInputError(
            f"{TARGET}: the reference has no labels; estimation is fitted on a labelled "
            "reference, so name its label column")
    series = pd.Series(np.asarray(labels, dtype=object))
    if len(series) != rows:
        raise EstimationInputError(
            f"{REFERENCE}: has {len(series)} labels for {rows} rows; give one label per row")
    present = series.notna().to_numpy()
    if not present.any():
        raise EstimationInputError(
            f"{TARGET}: every label of the reference is missing; estimation is fitted on a "
            "labelled reference")
    return present


def enough_rows(rows: int, minimum: int = MIN_REFERENCE_ROWS) -> None:
    """Raise unless the reference has at least ``minimum`` labelled rows."""
    if rows < minimum:
        raise EstimationInputError(
            f"{REFERENCE}: has {rows} labelled rows; estimation needs at least {minimum} to "
            "be fitted, so give a larger labelled reference")
