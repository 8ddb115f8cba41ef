"""The ``auto`` rule on tied numeric references: which method it picks, decided from the
fitted profile (the calibration that motivates it is in
``tests/accuracy/test_auto_calibration.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import ColumnRequest, fit_column
from modelmon.stats.drift import (
    AUTO_CVM_MAX_VALUE_SHARE,
    AUTO_CVM_NULL_MEAN_TOLERANCE,
    AUTO_MAX_VALUE_CATEGORIES,
    AUTO_TIED_UNIQUE_SHARE,
    auto_method,
    cvm_null_mean_ratio,
    is_tied,
    largest_value_share,
)
from modelmon.stats.profile import fit_numeric

ROWS = 600


def _sample(shape: str) -> np.ndarray:
    rng = np.random.default_rng(5)
    if shape == "normal":
        return rng.normal(size=ROWS)
    if shape == "counts":  # Poisson, mean 3: 10 or so values, none above 25%
        return rng.poisson(3.0, ROWS).astype(float)
    if shape == "rounded":
        return np.round(rng.normal(size=ROWS), 1)
    if shape == "geometric":  # counts piled up at 0 without one value above 25%
        return (rng.geometric(0.2, ROWS) - 1).astype(float)
    if shape == "mostly-zero":  # 8 values, half of them 0
        return rng.choice(8, ROWS, p=[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01]
                          ).astype(float)
    if shape == "zero-inflated":  # half 0, half continuous: too many values for categories
        return np.where(rng.random(ROWS) < 0.5, 0.0, rng.exponential(size=ROWS))
    raise AssertionError(shape)


@pytest.mark.parametrize(("shape", "kind", "method"), [
    ("normal", "numeric", "ks"),
    ("counts", "numeric", "cvm"),
    ("rounded", "numeric", "cvm"),
    ("geometric", "categorical", "chisquare"),
    ("mostly-zero", "categorical", "chisquare"),
    ("zero-inflated", "numeric", "ks"),
])
def test_auto_picks_by_the_ties_of_the_reference(shape: str, kind: str, method: str) -> None:
    fitted = fit_column(pd.Series(_sample(shape)), ColumnRequest("x"), ROWS)
    assert (fitted.kind, fitted.method, fitted.by_auto) == (kind, method, True)
    assert fitted.dtype_kind == "numeric"


def test_tied_references_above_the_small_size_keep_the_distances() -> None:
    values = np.resize(np.arange(10.0), 5000)
    fitted = fit_column(pd.Series(values), ColumnRequest("x"), values.size)
    assert (fitted.kind, fitted.method) == ("numeric", "wasserstein")


def test_an_explicit_numeric_method_is_kept_on_tied_data() -> None:
    values = _sample("mostly-zero")
    fitted = fit_column(pd.Series(values), ColumnRequest("x", numeric_method="ks"), ROWS)
    assert (fitted.kind, fitted.method, fitted.by_auto) == ("numeric", "ks", False)
    fitted = fit_column(pd.Series(values), ColumnRequest("x", method="anderson"), ROWS)
    assert (fitted.kind, fitted.method) == ("numeric", "anderson")


def test_the_rule_reads_unique_share_and_largest_value_share() -> None:
    # Exactly at the tie cut-off: tied; one more distinct value: not.
    distinct = int(AUTO_TIED_UNIQUE_SHARE * 100)
    tied = fit_numeric(np.resize(np.arange(float(distinct)), 100))
    assert is_tied(tied)
    assert auto_method("numeric", 100, tied.n_unique, tied) == "cvm"
    untied = fit_numeric(np.concatenate([np.arange(distinct + 1.0),
                                         np.zeros(100 - distinct - 1)]))
    assert not is_tied(untied)
    assert auto_method("numeric", 100, untied.n_unique, untied) == "ks"
    # Without the profile a numeric column counts as untied.
    assert auto_method("numeric", 100, tied.n_unique) == "ks"
    # A dominant value in the middle (the values are symmetric: no pile-up at an end):
    # categories while there are few values, ks beyond.
    rows = 1000
    dominant = int(AUTO_CVM_MAX_VALUE_SHARE * rows) + 1
    cap = AUTO_MAX_VALUE_CATEGORIES
    odd_at_most, odd_above = cap - 1 + cap % 2, cap + 1 + cap % 2  # symmetric: odd counts
    for values, expected in ((odd_at_most, "chisquare"), (odd_above, "ks")):
        side = (values - 1) // 2
        rest = np.resize(np.concatenate([np.arange(-side, 0.0), np.arange(1.0, side + 1)]),
                         rows - dominant)
        profile = fit_numeric(np.concatenate([np.zeros(dominant), rest]))
        assert (profile.n_unique, is_tied(profile)) == (values, True)
        assert largest_value_share(profile.sorted_values) == dominant / rows
        ratio = cvm_null_mean_ratio(profile.sorted_values)
        assert abs(ratio - 1) <= AUTO_CVM_NULL_MEAN_TOLERANCE
        assert auto_method("numeric", rows, profile.n_unique, profile) == expected


def test_cvm_null_mean_ratio_reads_where_the_values_pile_up() -> None:
    assert cvm_null_mean_ratio(np.arange(1000.0)) == pytest.approx(1.0, abs=1e-5)
    assert cvm_null_mean_ratio(np.repeat(np.arange(20.0), 50)) == pytest.approx(1.0, abs=0.01)
    low = np.concatenate([np.zeros(300), np.arange(1.0, 701.0)])
    assert cvm_null_mean_ratio(low) > 1 + AUTO_CVM_NULL_MEAN_TOLERANCE
    assert cvm_null_mean_ratio(-low[::-1]) < 1 - AUTO_CVM_NULL_MEAN_TOLERANCE
    assert cvm_null_mean_ratio(np.array([])) == 1.0


def test_largest_value_share() -> None:
    assert largest_value_share(np.array([])) == 0.0
    assert largest_value_share(np.array([1.0])) == 1.0
    assert largest_value_share(np.array([0.0, 1.0, 1.0, 1.0, 2.0, 2.0])) == 0.5
    assert largest_value_share(np.arange(4.0)) == 0.25
