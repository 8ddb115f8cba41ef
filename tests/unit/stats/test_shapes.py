"""stats.dataset.window_shapes: the counts a report plots, for both sides alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import (
    CategoricalShape,
    ColumnRequest,
    NumericShape,
    ReferenceProfile,
    column_shape,
    fit_reference,
    window_shapes,
)
from modelmon.stats.dataset.shapes import NAMED_CATEGORIES, SHAPE_BINS, TOP_CATEGORIES


def _profile(frame: pd.DataFrame, categorical: tuple[str, ...] = ()) -> ReferenceProfile:
    """Numeric columns scored as numeric (KS) however few their values."""
    requests = [ColumnRequest(name, categorical=True) if name in categorical
                else ColumnRequest(name, numeric_method="ks") for name in frame.columns]
    return fit_reference(frame.copy(), requests)


def _numeric(reference: np.ndarray, current: np.ndarray) -> NumericShape:
    profile = _profile(pd.DataFrame({"x": reference}))
    shape = column_shape(profile.columns["x"], pd.Series(current)).shape
    assert isinstance(shape, NumericShape)
    return shape


def test_numeric_counts_add_up_and_bins_are_shared() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 5000)
    current = np.concatenate([rng.normal(0.5, 1.2, 3000), [np.nan] * 7, [np.inf]])
    shape = _numeric(reference, current)
    assert shape.edges.size == SHAPE_BINS + 1 and np.all(np.diff(shape.edges) > 0)
    for counts, side, finite in ((shape.reference, shape.reference_side, 5000),
                                 (shape.current, shape.current_side, 3000)):
        assert side.present == finite
        assert counts.sum() + side.below + side.above == finite
    assert shape.current_side.missing == 8  # NaN and the infinity
    assert shape.reference_side.below == shape.reference_side.above == 0  # drawn whole
    # The current side's mean lies higher: its mass sits further right.
    centres = (shape.edges[:-1] + shape.edges[1:]) / 2
    assert (centres @ shape.current / shape.current.sum()
            > centres @ shape.reference / shape.reference.sum() + 0.3)


def test_equal_sides_give_equal_counts_even_on_edges() -> None:
    values = np.arange(0.0, 31.0)  # every edge of a 0..30 range in 30 bins is a value
    shape = _numeric(values, values.copy())
    assert shape.reference.tolist() == shape.current.tolist()
    assert shape.reference.sum() == 31


def test_far_values_are_counted_not_drawn() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(0, 1, 2000)
    current = np.concatenate([rng.normal(0, 1, 2000), [1e6, 2e6]])
    shape = _numeric(reference, current)
    assert shape.edges[-1] < 10  # the two wild values do not squeeze the rest
    assert shape.current_side.above >= 2
    assert shape.current.sum() + shape.current_side.below + shape.current_side.above == 2002


def test_one_value_gets_a_range_around_it() -> None:
    shape = _numeric(np.full(100, 5.0), np.full(50, 5.0))
    assert shape.edges[0] < 5.0 < shape.edges[-1]
    assert shape.reference.sum() == 100 and shape.current.sum() == 50


def test_categories_new_vanished_and_the_rest() -> None:
    reference = pd.Series(["a"] * 50 + ["b"] * 30 + ["gone"] * 20
                          + [f"r{i}" for i in range(40)])
    current = pd.Series(["a"] * 10 + ["b"] * 60 + ["fresh"] * 30
                        + [f"n{i}" for i in range(30)] + [None] * 5)
    profile = _profile(pd.DataFrame({"c": reference}), categorical=("c",))
    shape = column_shape(profile.columns["c"], current).shape
    assert isinstance(shape, CategoricalShape)
    assert len(shape.categories) == TOP_CATEGORIES
    assert shape.categories[:4] == ("b", "a", "fresh", "gone")  # by the larger share
    assert shape.new[0] == "fresh" and shape.new_count == 31
    assert len(shape.new) == NAMED_CATEGORIES
    assert shape.vanished[0] == "gone" and shape.vanished_count == 41
    assert shape.reference.sum() + shape.reference_other == 140
    assert shape.current.sum() + shape.current_other == 130
    assert shape.current_side.missing == 5


def test_missing_and_retyped_columns_say_why() -> None:
    profile = _profile(pd.DataFrame({"x": np.arange(10.0), "y": np.arange(10.0)}))
    shapes = window_shapes(profile, pd.DataFrame({"y": ["a"] * 5}))
    assert list(shapes) == ["x", "y"]
    assert shapes["x"].shape is None and "no such column" in (shapes["x"].reason or "")
    assert shapes["y"].shape is None and "not in the current" in (shapes["y"].reason or "")


@pytest.mark.parametrize("rows", [1, 10_000])
def test_shape_size_does_not_grow_with_rows(rows: int) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=rows),
                          "c": rng.integers(0, 1000, rows).astype(str)})
    profile = _profile(frame, categorical=("c",))
    shapes = window_shapes(profile, frame)
    numeric = shapes["x"].shape
    categorical = shapes["c"].shape
    assert isinstance(numeric, NumericShape) and numeric.reference.size == SHAPE_BINS
    assert isinstance(categorical, CategoricalShape)
    assert len(categorical.categories) <= TOP_CATEGORIES
    assert len(categorical.new) == categorical.new_count == 0
