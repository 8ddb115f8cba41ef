"""Confidence figures of a classifier's window, from its probabilities alone.

Part of ``stats`` (third stop on the data line): given the predicted probabilities of the
current window (the positive class's, or one column per class), return how confident the
model was: the mean of each row's top class probability, the share of rows whose top
probability is below a cutoff, and the share of rows predicted as each class (the class
with the top probability). Labels are not needed. No verdicts here: bounds belong to
``evaluation``.

Multiclass rows whose probabilities do not sum to 1 (one-vs-rest scores, rounded values)
are divided by their sum before the top probability is taken, so the figure is the top
class's share of the row's total; how many rows needed it is reported. Probabilities
outside [0, 1], missing (NaN) or not numbers make the figures undefined: the error says
which column and how many rows, never the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

#: A row's probabilities sum to 1 when they are this close to it; others are renormalised.
SUM_TOLERANCE = 1e-6
#: The classes of a binary classifier's positive-class probability, in class shares.
POSITIVE, NEGATIVE = "positive", "negative"


class ConfidenceInputError(ValueError):
    """The probabilities cannot give confidence figures; ``column`` is the one at fault
    (None when the fault is the rows', not one column's)."""

    def __init__(self, column: str | None, problem: str) -> None:
        super().__init__(problem)
        self.column = column
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Confidence:
    """The confidence figures of one window."""

    mean_confidence: float
    """Mean over the rows of the top class probability."""
    low_confidence_share: float
    """Share of rows whose top class probability is below ``below``."""
    below: float
    class_shares: dict[str, float]
    """Share of rows predicted as each class (its probability is the row's top one)."""
    rows: int
    renormalised_rows: int = 0
    """Rows whose class probabilities did not sum to 1 and were divided by their sum."""


def _probabilities(frame: pd.DataFrame, column: str) -> NDArray[np.float64]:
    """The column as probabilities in [0, 1], or why it is not."""
    if column not in frame.columns:
        raise ConfidenceInputError(column, f"the current window has no column {column!r}")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    unreadable = int((np.isnan(values) & frame[column].notna().to_numpy()).sum())
    if unreadable:
        raise ConfidenceInputError(column, f"column {column!r} holds {unreadable} value(s) "
                                           "that are not numbers")
    missing = int(np.isnan(values).sum())
    if missing:
        raise ConfidenceInputError(column, f"column {column!r} has {missing} missing (NaN) "
                                           f"probabilit{'y' if missing == 1 else 'ies'}")
    outside = int(((values < 0.0) | (values > 1.0)).sum())
    if outside:
        raise ConfidenceInputError(column, f"column {column!r} holds {outside} "
                                           "probabilit" + ("y" if outside == 1 else "ies")
                                   + " outside [0, 1]")
    return values


def _figures(top: NDArray[np.float64], predicted: NDArray[np.intp], classes: list[str],
             below: float, renormalised: int) -> Confidence:
    rows = len(top)
    counts = np.bincount(predicted, minlength=len(classes))
    return Confidence(
        mean_confidence=float(top.mean()),
        low_confidence_share=float((top < below).mean()),
        below=below,
        class_shares={c: float(n) / rows for c, n in zip(classes, counts, strict=True)},
        rows=rows, renormalised_rows=renormalised)


def _check_rows(frame: pd.DataFrame, below: float) -> None:
    if len(frame) == 0:
        raise ConfidenceInputError(None, "the current window has no rows")
    if not 0.0 < below <= 1.0:
        raise ValueError(f"below must be in (0, 1], not {below}")


def binary_confidence(frame: pd.DataFrame, probability: str, below: float) -> Confidence:
    """Confidence of a binary classifier from its positive-class probability ``p``: the
    top probability of a row is max(p, 1 - p); a row is predicted positive when
    p >= 0.5 (as the performance metrics threshold it)."""
    _check_rows(frame, below)
    positive = _probabilities(frame, probability)
    top = np.maximum(positive, 1.0 - positive)
    predicted = np.where(positive >= 0.5, 0, 1).astype(np.intp)
    return _figures(top, predicted, [POSITIVE, NEGATIVE], below, 0)


def class_confidence(frame: pd.DataFrame, columns: Mapping[str, str],
                     below: float) -> Confidence:
    """Confidence of a classifier with one probability column per class (``columns``:
    class label to column): the top probability of a row is the largest of its class
    probabilities after dividing them by their sum (rows that sum to 1 are unchanged); a
    tie goes to the class listed first. A row whose probabilities are all 0 has no top
    class and is an error."""
    _check_rows(frame, below)
    if len(columns) < 2:
        raise ValueError("class confidence needs at least two classes")
    classes = list(columns)
    matrix = np.column_stack([_probabilities(frame, columns[c]) for c in classes])
    sums = matrix.sum(axis=1)
    empty = int((sums <= 0.0).sum())
    if empty:
        raise ConfidenceInputError(None, f"{empty} row(s) have every class probability 0, so "
                                         "no class is predicted")
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        matrix = matrix / sums[:, None]
    predicted = np.argmax(matrix, axis=1).astype(np.intp)
    top = matrix[np.arange(len(matrix)), predicted]
    return _figures(top, predicted, classes, below, int(off.sum()))
