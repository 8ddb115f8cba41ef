"""The numpy and pyarrow paths that replace pandas' per-call overhead on small windows.

``performance.present_rows`` stands for ``frame[columns].dropna()`` and
``profile.fit_categorical``'s counting of strings, integers and booleans for
``value_counts(dropna=True)``: each dtype whose missing values they find in their own way
(NaN, None, pd.NA, NaT; numpy, nullable, pyarrow and object columns) is held to pandas'
``dropna`` or to a plain-Python count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelmon.stats.performance import compute, present_rows

#: Ten rows of a column of each dtype, some of them missing (None stands for the dtype's
#: own missing value).
COLUMNS: dict[str, tuple[list[Any], Any]] = {
    "float": ([0.1, None, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], np.float64),
    "int": ([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], np.int64),
    "bool": ([True, False, True, True, False, True, False, True, True, False], np.bool_),
    "Int64": ([1, 0, None, 1, 0, 1, 1, 0, 0, 1], "Int64"),
    "boolean": ([True, None, False, True, True, False, True, None, True, False], "boolean"),
    "Float64": ([0.1, 0.2, 0.3, None, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "Float64"),
    "str": (["yes", "no", "yes", None, "no", "yes", "no", "yes", "yes", "no"], "str"),
    "arrow": (["yes", "no", None, "yes", "no", "yes", "no", "yes", "no", "no"],
              pd.ArrowDtype(pa.string())),
    "object": (["yes", pd.NA, "no", "yes", math.nan, "yes", "no", None, "no", "yes"], object),
    "category": (["yes", "no", "yes", "no", "yes", None, "no", "yes", "no", "yes"],
                 "category"),
    "datetime": (["2024-01-01", None, "2024-01-02", "2024-01-03", "2024-01-04",
                  "2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08", None],
                 "datetime64[ns]"),
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values, dtype=dtype)
                         for name, (values, dtype) in COLUMNS.items()})


@pytest.mark.parametrize("first", list(COLUMNS))
@pytest.mark.parametrize("second", ["int", "float", "str", "Int64", "object"])
def test_present_rows_keeps_what_dropna_keeps(first: str, second: str) -> None:
    frame = _frame()
    columns = list(dict.fromkeys([first, second]))
    expected = frame[columns].dropna()
    rows = present_rows(frame, columns)
    assert list(rows) == columns
    for name in columns:
        assert rows[name].dtype == expected[name].dtype
        assert rows[name].index.tolist() == expected.index.tolist()
        assert rows[name].equals(expected[name])


def test_present_rows_of_complete_columns_are_the_columns() -> None:
    frame = _frame()[["int", "bool"]].assign(score=np.linspace(0, 1, 10))
    rows = present_rows(frame, ["int", "bool", "score"])
    for name in ("int", "bool", "score"):
        assert rows[name].equals(frame[name])
        assert np.shares_memory(rows[name].to_numpy(), frame[name].to_numpy())


@pytest.mark.parametrize(("target", "positive"),
                         [("Int64", None), ("boolean", None), ("str", "yes"),
                          ("arrow", "yes"), ("object", "yes"), ("float", None)])
def test_binary_metrics_of_rows_with_missing_values_are_those_of_the_complete_rows(
        target: str, positive: str | None) -> None:
    frame = _frame()
    labels = frame[target] if target != "float" else (frame["float"] > 0.45).where(
        frame["float"].notna())
    window = pd.DataFrame({"y": labels, "yhat": frame["str"], "p": frame["Float64"]})
    names = ["accuracy", "precision", "recall", "rocAuc", "brier"]
    got = compute("binaryClassification", names, window, target="y", prediction="yhat",
                  probability="p", positive=positive or "yes")
    complete = window.dropna().reset_index(drop=True)
    assert len(complete) < len(window)
    want = compute("binaryClassification", names,
                   complete.astype({"y": object, "yhat": object, "p": np.float64}),
                   target="y", prediction="yhat", probability="p",
                   positive=positive or "yes")
    assert got == want
