"""Data-quality figures against the reference profile: known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import ColumnRequest, data_quality, fit_reference


def test_fences_range_missing_and_new_categories() -> None:
    ref = pd.DataFrame({"x": np.arange(1.0, 101.0), "c": ["a", "b"] * 50})
    # Reference quartiles of 1..100 are 25.75 and 75.25: fences -48.5 and 149.5.
    cur = pd.DataFrame({"x": [0.5, 50, 101, 150, -49, np.nan, 60, 70],
                        "c": ["a", "b", "z", None, "y", "a", "a", "a"]})
    profile = fit_reference(ref, [ColumnRequest("x"), ColumnRequest("c")])
    q = data_quality(profile, cur)
    x, c = q.columns
    assert x.missing_fraction == pytest.approx(1 / 8)
    assert x.outlier_fraction == pytest.approx(2 / 7)       # 150 and -49
    assert x.out_of_range_fraction == pytest.approx(4 / 7)  # 0.5, 101, 150, -49
    assert x.new_categories is None
    assert c.missing_fraction == pytest.approx(1 / 8)
    assert c.new_categories == 2 and c.outlier_fraction is None
    assert q.missing_columns == [] and q.type_changes == []


def test_missing_column_type_change_and_empty_window() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1, 2, 3], "z": ["a", "b", "c"]})
    profile = fit_reference(ref, [ColumnRequest(n) for n in "xyz"])
    q = data_quality(profile, pd.DataFrame({"x": ["p", "q", "r"], "z": [None, None, None]}))
    assert q.missing_columns == ["y"]
    assert q.type_changes == [("x", "numeric", "categorical")]
    empty = data_quality(profile, ref.iloc[:0])
    assert all(c.missing_fraction == 0.0 for c in empty.columns)
