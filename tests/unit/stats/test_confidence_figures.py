"""Confidence figures from a classifier's probabilities: binary, one column per class,
renormalised rows, and the bad input that leaves them undefined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.estimation import (
    ConfidenceInputError,
    binary_confidence,
    class_confidence,
)


def test_binary_top_probability_is_the_larger_of_p_and_its_complement() -> None:
    frame = pd.DataFrame({"p": [0.9, 0.2, 0.55, 0.5, 0.05]})
    got = binary_confidence(frame, "p", below=0.6)
    tops = [0.9, 0.8, 0.55, 0.5, 0.95]
    assert got.mean_confidence == pytest.approx(np.mean(tops))
    assert got.low_confidence_share == pytest.approx(2 / 5)  # 0.55 and 0.5
    # Positive when p >= 0.5, as the performance metrics threshold it.
    assert got.class_shares == pytest.approx({"positive": 3 / 5, "negative": 2 / 5})
    assert got.rows == 5 and got.renormalised_rows == 0 and got.below == 0.6


def test_binary_agrees_with_two_class_columns() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(500)
    one = binary_confidence(pd.DataFrame({"p": p}), "p", below=0.7)
    two = class_confidence(pd.DataFrame({"yes": p, "no": 1 - p}), {"yes": "yes", "no": "no"},
                           below=0.7)
    assert one.mean_confidence == pytest.approx(two.mean_confidence)
    assert one.low_confidence_share == pytest.approx(two.low_confidence_share)
    assert one.class_shares["positive"] == pytest.approx(two.class_shares["yes"])


def test_multiclass_takes_the_top_class_of_each_row() -> None:
    frame = pd.DataFrame({"pa": [0.7, 0.1, 0.3, 0.2],
                          "pb": [0.2, 0.5, 0.3, 0.2],
                          "pc": [0.1, 0.4, 0.4, 0.6]})
    got = class_confidence(frame, {"a": "pa", "b": "pb", "c": "pc"}, below=0.6)
    assert got.mean_confidence == pytest.approx((0.7 + 0.5 + 0.4 + 0.6) / 4)
    assert got.low_confidence_share == pytest.approx(2 / 4)
    assert got.class_shares == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})
    assert sum(got.class_shares.values()) == pytest.approx(1.0)
    assert got.renormalised_rows == 0


def test_a_tie_goes_to_the_class_listed_first() -> None:
    frame = pd.DataFrame({"pa": [0.5], "pb": [0.5]})
    assert class_confidence(frame, {"b": "pb", "a": "pa"}, 0.6).class_shares == {
        "b": 1.0, "a": 0.0}


def test_rows_that_do_not_sum_to_one_are_renormalised_and_counted() -> None:
    # One-vs-rest scores: row 0 sums to 1.5, row 1 to 1 (unchanged), row 2 to 0.5.
    frame = pd.DataFrame({"pa": [0.9, 0.6, 0.1], "pb": [0.6, 0.4, 0.4]})
    got = class_confidence(frame, {"a": "pa", "b": "pb"}, below=0.65)
    tops = [0.9 / 1.5, 0.6, 0.4 / 0.5]
    assert got.mean_confidence == pytest.approx(np.mean(tops))
    assert got.low_confidence_share == pytest.approx(2 / 3)  # 0.6 and 0.6
    assert got.renormalised_rows == 2
    assert got.class_shares == pytest.approx({"a": 2 / 3, "b": 1 / 3})


def test_the_cutoff_is_strict() -> None:
    frame = pd.DataFrame({"p": [0.6, 0.4, 0.7]})
    assert binary_confidence(frame, "p", below=0.6).low_confidence_share == 0.0
    assert binary_confidence(frame, "p", below=0.61).low_confidence_share == pytest.approx(
        2 / 3)


@pytest.mark.parametrize(("values", "said"), [
    ([0.2, 1.3, 0.5], "1 probability outside [0, 1]"),
    ([0.2, -0.1, -2.0], "2 probabilities outside [0, 1]"),
    ([0.2, np.nan, 0.5], "1 missing (NaN) probability"),
    ([0.2, "high", 0.5], "1 value(s) that are not numbers"),
])
def test_bad_probabilities_name_the_column_and_count_without_values(
        values: list[object], said: str) -> None:
    frame = pd.DataFrame({"score": values})
    with pytest.raises(ConfidenceInputError) as info:
        binary_confidence(frame, "score", below=0.6)
    assert info.value.column == "score"
    assert said in info.value.problem and "'score'" in info.value.problem
    assert "1.3" not in info.value.problem and "high" not in info.value.problem


def test_a_bad_class_column_is_the_one_named() -> None:
    frame = pd.DataFrame({"pa": [0.5, 0.2], "pb": [0.5, 1.8]})
    with pytest.raises(ConfidenceInputError) as info:
        class_confidence(frame, {"a": "pa", "b": "pb"}, below=0.6)
    assert info.value.column == "pb"


def test_missing_column_and_rows_without_any_probability() -> None:
    with pytest.raises(ConfidenceInputError) as info:
        class_confidence(pd.DataFrame({"pa": [0.5]}), {"a": "pa", "b": "pb"}, 0.6)
    assert info.value.column == "pb" and "no column 'pb'" in info.value.problem
    with pytest.raises(ConfidenceInputError) as info:
        class_confidence(pd.DataFrame({"pa": [0.0, 0.5], "pb": [0.0, 0.5]}),
                         {"a": "pa", "b": "pb"}, 0.6)
    assert info.value.column is None and "1 row(s) have every class probability 0" in str(
        info.value)
    with pytest.raises(ConfidenceInputError):
        binary_confidence(pd.DataFrame({"p": []}), "p", 0.6)
