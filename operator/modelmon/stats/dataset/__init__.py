"""Whole-dataset statistics: fit a reference once, then score current windows against it.

Part of ``stats`` (third stop on the data line), in three modules:

- ``reference``: ``fit_reference`` turns the reference frame into a ``ReferenceProfile``
  (one profile per monitored column, plus its kind and drift method);
- ``window``: ``score_drift``, ``data_quality`` and ``score_window`` (both in one pass)
  read only the profile and the current frame, one column at a time, so a check never
  re-sorts or re-bins the reference and never copies the whole window;
- ``thresholds``: ``chunk_distances_of``, the figures a learned threshold is made of
  (reference chunks of a window's size scored against the rest), kept in the profile;
- ``threads``: how many threads a check that runs alone may use (``alone_workers``);
- ``shapes``: ``window_shapes``, counts of both sides for a plot of each column (the
  report's histograms and bars).

The names other packages use are re-exported here; import them from ``stats.dataset``.
"""

from __future__ import annotations

from modelmon.stats.dataset.reference import (
    LOW_CARDINALITY,
    ColumnProfile,
    ColumnRequest,
    ColumnSpecError,
    ReferenceProfile,
    Role,
    fit_column,
    fit_reference,
    fitted_column,
    is_numeric,
    scored_kind,
    sortable_columns,
)
from modelmon.stats.dataset.shapes import (
    CategoricalShape,
    ColumnShape,
    NumericShape,
    Shape,
    Side,
    column_shape,
    window_shapes,
)
from modelmon.stats.dataset.threads import (
    ALONE_MAX_WORKERS,
    PARALLEL_MIN_VALUES,
    alone_workers,
)
from modelmon.stats.dataset.thresholds import chunk_distances_of
from modelmon.stats.dataset.window import (
    FEATURES,
    ColumnDrift,
    ColumnQualityFigures,
    ColumnReader,
    CurrentColumn,
    QualityFigures,
    WindowScores,
    column_quality,
    current_values,
    data_quality,
    score_column,
    score_drift,
    score_window,
)
from modelmon.stats.drift.learned import ChunkDistances, chunk_size

__all__ = [
    "ALONE_MAX_WORKERS",
    "FEATURES",
    "LOW_CARDINALITY",
    "PARALLEL_MIN_VALUES",
    "CategoricalShape",
    "ChunkDistances",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQualityFigures",
    "ColumnReader",
    "ColumnRequest",
    "ColumnShape",
    "ColumnSpecError",
    "CurrentColumn",
    "NumericShape",
    "QualityFigures",
    "ReferenceProfile",
    "Role",
    "Shape",
    "Side",
    "WindowScores",
    "alone_workers",
    "chunk_distances_of",
    "chunk_size",
    "column_quality",
    "column_shape",
    "current_values",
    "data_quality",
    "fit_column",
    "fit_reference",
    "fitted_column",
    "is_numeric",
    "score_column",
    "score_drift",
    "score_window",
    "scored_kind",
    "sortable_columns",
    "window_shapes",
]
