"""Column summaries (stats.summary): numbers read off sorted values and category counts,
checked against numpy and plain counting, and their bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.profile import fit_categorical, fit_numeric
from modelmon.stats.summary import (
    NAME_CHARS,
    NEW_CATEGORIES,
    QUANTILES,
    TOP_CATEGORIES,
    categorical_summary,
    numeric_summary,
    profile_summary,
)


def test_numeric_summary_matches_numpy() -> None:
    values = np.random.default_rng(3).lognormal(size=1001)
    summary = numeric_summary(fit_numeric(values).sorted_values)
    assert summary.count == values.size
    assert summary.mean == pytest.approx(values.mean())
    assert summary.std == pytest.approx(values.std())
    assert (summary.minimum, summary.maximum) == (values.min(), values.max())
    assert summary.quantiles == pytest.approx(np.quantile(values, QUANTILES), rel=1e-12)


def test_numeric_summary_of_nothing_is_nan() -> None:
    summary = numeric_summary(np.empty(0))
    assert summary.count == 0 and np.isnan(summary.mean) and all(np.isnan(summary.quantiles))


def test_categorical_summary_top_shares_and_new_categories() -> None:
    reference = fit_categorical(pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2))
    window = fit_categorical(pd.Series(["a"] * 2 + ["z"] * 4 + ["y"] * 4 + [None] * 3))
    ref = categorical_summary(reference)
    assert ref.top == (("a", 0.5), ("b", 0.3), ("c", 0.2))
    assert ref.new_count is None and ref.new == ()
    cur = categorical_summary(window, reference)
    assert cur.count == 10 and cur.categories == 3
    assert cur.top == (("y", 0.4), ("z", 0.4), ("a", 0.2))  # ties by name
    assert cur.new == ("y", "z") and cur.new_count == 2
    assert cur.new_share == pytest.approx(0.8)


def test_categorical_summary_is_bounded() -> None:
    reference = fit_categorical(pd.Series(["known"]))
    names = [f"{'x' * 100}{i:02d}" for i in range(20)]
    window = fit_categorical(pd.Series([n for i, n in enumerate(names) for _ in range(i + 1)]))
    cur = categorical_summary(window, reference)
    assert len(cur.top) == TOP_CATEGORIES and len(cur.new) == NEW_CATEGORIES
    assert cur.new_count == 20 and cur.categories == 20
    assert all(len(name) <= NAME_CHARS and name.endswith("...") for name in cur.new)
    assert cur.top[0][1] == pytest.approx(20 / sum(range(1, 21)))


def test_reference_summary_reads_the_fitted_profile() -> None:
    values = np.random.default_rng(5).normal(3.0, 2.0, size=5000)
    values[::7] = np.nan
    profile = fit_numeric(values)
    fitted, direct = profile_summary(profile), numeric_summary(profile.sorted_values)
    assert fitted.count == direct.count == np.isfinite(values).sum()
    assert fitted.mean == pytest.approx(direct.mean) and fitted.std == pytest.approx(direct.std)
    assert fitted.quantiles == direct.quantiles
    assert (fitted.minimum, fitted.maximum) == (direct.minimum, direct.maximum)
