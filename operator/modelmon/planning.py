"""Where the spec meets the reference's columns: which columns a check scores, and how.

Between ``sources`` and ``stats`` on the data line: ``plan`` reads the spec's column roles,
lists and drift methods against the columns the reference actually has, and returns
the requests ``stats.dataset.fit_reference`` fits. Errors name the spec field and the
columns that exist (a few names, never data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from modelmon.api.messages import capped
from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.evaluation import InvalidSpecError
from modelmon.stats.dataset import ColumnRequest, Role

#: Longest column name a message shows; a longer one is told by its length only.
SHOWN_NAME = 64


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Which columns a check scores, and how."""

    features: list[ColumnRequest]
    prediction: ColumnRequest | None
    target: ColumnRequest | None

    @property
    def requests(self) -> list[ColumnRequest]:
        extra = [r for r in (self.prediction, self.target) if r is not None]
        return [*self.features, *extra]


def columns_said(columns: Sequence[str], rows: int) -> str:
    """The columns of a dataset for a message: a few names, not data. A file with a header
    and no rows (a token or key read as CSV has its content there) shows none, nor is a
    name longer than ``SHOWN_NAME`` shown."""
    if rows == 0:
        return f"it has {len(columns)} column(s) and no rows"
    return "its columns: " + capped(
        [c if len(c) <= SHOWN_NAME else f"<a {len(c)}-character name>" for c in map(str, columns)],
        20)


def _not_in(columns: Sequence[str], names: Sequence[str], where: str, side: str,
            rows: int) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        what = "is not a column" if len(unknown) == 1 else "are not columns"
        raise InvalidSpecError(
            f"{where}: {capped([repr(n) for n in unknown])} {what} of the {side} "
            f"({columns_said(columns, rows)})")


def plan(spec: ModelMonitorSpec, reference: pd.DataFrame) -> ColumnPlan:
    """Decide the monitored columns from the spec and the reference's columns."""
    cols = spec.columns
    names = [str(c) for c in reference.columns]
    rows = len(reference)
    roles = cols.roles()
    if cols.features is not None:
        _not_in(names, cols.features, "spec.columns.features", "reference data", rows)
    _not_in(names, cols.categorical, "spec.columns.categorical", "reference data", rows)
    _not_in(names, cols.exclude, "spec.columns.exclude", "reference data", rows)
    _not_in(names, list(spec.drift.features), "spec.drift.features", "reference data", rows)
    for col, role in roles.items():
        if role == "predictionProbability" and col not in names:
            raise InvalidSpecError(f"spec.columns.{role}: {col!r} is not a column of the "
                                   f"reference data ({columns_said(names, rows)})")
    features = cols.features if cols.features is not None else [
        n for n in names if n not in roles and n not in cols.exclude]
    categorical = set(cols.categorical)
    # A column's own method must apply to it; without one, the fit picks the method of the
    # kind it scores the column as (spec.drift.numericMethod, categoricalMethod, method).
    by_kind = {kind: spec.drift.kind_method(kind) for kind in ("numeric", "categorical")}

    def request(name: str, role: Role) -> ColumnRequest:
        override = spec.drift.features.get(name)
        return ColumnRequest(name, role, override.method if override and override.method
                             else "auto",
                             categorical=name in categorical or (
                                 role != "feature" and spec.model.task != "regression"
                                 and name != cols.prediction_probability),
                             numeric_method=by_kind["numeric"],
                             categorical_method=by_kind["categorical"])

    pred_col = cols.prediction or cols.prediction_probability
    return ColumnPlan(
        features=[request(n, "feature") for n in features],
        prediction=request(pred_col, "prediction") if pred_col in names else None,
        target=request(cols.target, "target") if cols.target in names else None,
    )


def no_labels(target: str | None, present: Callable[[str], bool],
               all_missing: Callable[[str], bool]) -> str | None:
    """Why the window has no labels at all (row mode and pushdown word it alike), or None
    when ``target`` is configured, present and not all missing."""
    if target is None:
        return "no target column is configured (spec.columns.target)"
    if not present(target):
        return f"the current window has no label column {target!r} (spec.columns.target)"
    if all_missing(target):
        return (f"every label in column {target!r} of the current window is missing "
                "(spec.columns.target)")
    return None
