"""The numpy and pyarrow paths that replace pandas' per-call overhead on small windows.

``performance.present_rows`` stands for ``frame[columns].dropna()`` and
``profile.fit_categorical``'s counting of strings, integers and booleans for
``value_counts(dropna=True)``: each dtype whose missing values they find in their own way
(NaN, None, pd.NA, NaT; numpy, nullable, pyarrow and object columns) is held to pandas'
``dropna`` or to a plain-Python count.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelmon.stats import profile as profile_module
from modelmon.stats.performance import compute, present_rows
from modelmon.stats.profile import fit_categorical

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


def _name(value: object) -> str:
    return str(int(value)) if isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)) else str(value)


def _counted(values: list[Any]) -> tuple[tuple[str, ...], list[int], int]:
    """(categories sorted, their counts, missing) counted in plain Python."""
    missing = [v for v in values if v is None or v is pd.NA
               or (isinstance(v, float) and math.isnan(v))]
    counts = Counter(_name(v) for v in values if not any(v is m for m in missing))
    names = tuple(sorted(counts))
    return names, [counts[n] for n in names], len(missing)


@pytest.mark.parametrize("dtype", [
    "str", "string[pyarrow]", "string[python]", pd.ArrowDtype(pa.string()),
    pd.ArrowDtype(pa.large_string()), object])
def test_string_columns_count_as_python_counts(dtype: Any) -> None:
    values = ["b", "a", None, "Éa", "", "a", None, "10", "9", "b", "a"]
    series = pd.Series(values, dtype=dtype)
    if not isinstance(dtype, pd.ArrowDtype):  # counted as values, not named one by one
        assert profile_module._count_labels(series) is not None
    profile = fit_categorical(series)
    names, counts, missing = _counted(values)
    assert profile.categories == names
    assert profile.counts.tolist() == counts
    assert profile.counts.dtype == np.int64
    assert (profile.n_present, profile.n_missing) == (sum(counts), missing)


@pytest.mark.parametrize(("values", "dtype"), [
    ([3, 1, None, 3, 127, 0, None], "Int64"),
    ([3, 1, None, 3, 255, 0], "UInt8"),
    ([True, None, False, True], "boolean"),
    ([3, 1, 3, -128, 0], np.int8),
    ([2 ** 64 - 1, 0, 2 ** 64 - 1], np.uint64),
    ([True, False, True], np.bool_),
    ([5, None, 5, 2], pd.ArrowDtype(pa.int64())),
    ([True, None, True], pd.ArrowDtype(pa.bool_())),
])
def test_integer_and_boolean_columns_count_as_python_counts(values: list[Any],
                                                            dtype: Any) -> None:
    profile = fit_categorical(pd.Series(values, dtype=dtype))
    names, counts, missing = _counted(values)
    assert profile.categories == names
    assert profile.counts.tolist() == counts
    assert (profile.n_present, profile.n_missing) == (sum(counts), missing)


def test_object_columns_with_every_missing_marker_count_only_the_strings() -> None:
    values = ["x", None, math.nan, pd.NA, "y", "x"]
    profile = fit_categorical(pd.Series(values, dtype=object))
    assert profile.categories == ("x", "y")
    assert profile.counts.tolist() == [2, 1]
    assert profile.n_missing == 3


def test_an_arrow_column_of_several_chunks_counts_every_chunk() -> None:
    chunks = pa.chunked_array([["b", None, "a"], ["a", "c"], [None, "b", "b"]])
    profile = fit_categorical(pd.Series(pd.arrays.ArrowExtensionArray(chunks)))
    assert profile.categories == ("a", "b", "c")
    assert profile.counts.tolist() == [2, 3, 1]
    assert profile.n_missing == 2


@pytest.mark.parametrize("dtype", ["str", "Int64", "boolean", np.int64, object])
def test_empty_and_all_missing_columns_have_no_category(dtype: Any) -> None:
    empty = fit_categorical(pd.Series([], dtype=dtype))
    assert (empty.categories, empty.n_present, empty.n_missing) == ((), 0, 0)
    if dtype is not np.int64:
        blank = fit_categorical(pd.Series([None, None], dtype=dtype))
        assert (blank.categories, blank.n_present, blank.n_missing) == ((), 0, 2)


def test_a_true_and_a_one_among_objects_stay_two_categories() -> None:
    profile = fit_categorical(pd.Series([True, 1, "a", 1], dtype=object))
    assert profile.categories == ("1", "True", "a")
    assert profile.counts.tolist() == [2, 1, 1]
