"""Numbers scored as categories: exact category identity (issue 16, point 2).

A numeric column scored as categorical (few distinct reference values under ``auto``, or a
categorical method) names each distinct number once: equal numbers are one category
whatever their dtype, distinct numbers are two, NaN is missing, and +inf and -inf are
categories of their own. The counts are checked against a plain-Python oracle (Python
compares ints and floats exactly) and the chi-square p-values against scipy.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.check import run_check
from modelmon.stats.dataset import ColumnRequest, fit_reference, score_window
from modelmon.stats.profile import CategoricalProfile, fit_categorical, number_names


def _number(name: str) -> float | int:
    """The number a category name stands for, read back exactly."""
    try:
        return int(name)
    except ValueError:
        return float(name)


def _oracle(values: list[float] | list[int]) -> Counter[float | int]:
    """Counts by numeric equality (Python compares int and float exactly); NaN dropped."""
    return Counter(v for v in values if not (isinstance(v, float) and math.isnan(v)))


def _as_numbers(profile: CategoricalProfile) -> dict[float | int, int]:
    return {_number(c): int(n) for c, n in zip(profile.categories, profile.counts, strict=True)}


def _table(reference: pd.Series, current: pd.Series) -> np.ndarray:
    """The 2 x k table over the distinct numbers of both sides, built without modelmon."""
    ref, cur = _oracle(reference.tolist()), _oracle(current.tolist())
    keys = list(ref | cur)
    return np.array([[ref[k] for k in keys], [cur[k] for k in keys]])


# --------------------------------------------------------------------------- names


def test_number_names_are_exact_and_read_back() -> None:
    values = np.array([0.0, -0.0, 2.0, -3.0, 0.5, 1e-5, 1 / 3, 1e20, -1e300, 2.0 ** 63,
                       -(2.0 ** 63), 2.0 ** 63 - 1024, 5e-324, math.inf, -math.inf])
    names = number_names(values).tolist()
    assert names[:5] == ["0", "0", "2", "-3", "0.5"]
    assert names[7] == str(10 ** 20) and names[9] == str(2 ** 63)
    assert names[-2:] == ["inf", "-inf"]
    for name, value in zip(names, values.tolist(), strict=True):
        assert _number(name) == value, name


def test_distinct_numbers_have_distinct_names() -> None:
    rng = np.random.default_rng(16)
    spread = rng.standard_normal(20_000) * 10.0 ** rng.integers(-300, 300, 20_000)
    whole = np.round(spread)  # many whole floats far beyond the int64 range
    values = np.unique(np.concatenate([spread, whole, [math.inf, -math.inf]]))
    assert np.unique(number_names(values)).size == values.size


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("values", [
    [0.0, 1.0, 2.0, 2.0, 0.5, math.nan],
    [1.0, 1.5, 2.0, 2.0],
    [0.0, -0.0, 0.0, 1.0],
    [1.0, math.inf, math.inf, -math.inf, math.nan],
    [1e19, 2e19, 3e19, 1e19, 2.0 ** 63, 2.0 ** 63 + 2048, -(2.0 ** 63) - 2048],
    [1e300, 1e300 * 2, 1e300, 7.0],
])
def test_float_columns_count_each_number_once(values: list[float]) -> None:
    profile = fit_categorical(pd.Series(values, dtype=np.float64))
    assert _as_numbers(profile) == _oracle(values)
    assert profile.n_missing == sum(math.isnan(v) for v in values)
    assert list(profile.categories) == sorted(profile.categories)


def test_integer_and_float_columns_of_the_same_numbers_share_categories() -> None:
    ints = [0, 1, 2, 2, 2 ** 62, -(2 ** 62), 9_007_199_254_740_992]
    as_int = fit_categorical(pd.Series(ints, dtype=np.int64))
    as_float = fit_categorical(pd.Series([float(i) for i in ints] + [math.nan]))
    nullable = fit_categorical(pd.Series([*ints, None], dtype="Int64"))
    assert as_int.categories == as_float.categories == nullable.categories
    assert as_int.counts.tolist() == as_float.counts.tolist() == nullable.counts.tolist()
    # 2**53 + 1 is an integer no float equals: a category of its own.
    apart = fit_categorical(pd.Series([2 ** 53 + 1], dtype=np.int64))
    assert set(apart.categories).isdisjoint(as_float.categories)


def test_object_and_categorical_columns_name_numbers_the_same_way() -> None:
    mixed = fit_categorical(pd.Series([1, 1.0, np.float32(1.0), True, "a", 0.5, None],
                                      dtype=object))
    assert dict(zip(mixed.categories, mixed.counts.tolist(), strict=True)) == {
        "1": 3, "True": 1, "a": 1, "0.5": 1}
    assert mixed.n_missing == 1
    coded = pd.Series(pd.Categorical([1.0, 2.0, 2.0, math.nan], categories=[1.0, 2.0, 3.0]))
    profile = fit_categorical(coded)
    assert dict(zip(profile.categories, profile.counts.tolist(), strict=True)) == {
        "1": 1, "2": 2}
    assert profile.n_missing == 1


# --------------------------------------------------------------------------- the cases


def _scored(reference: pd.Series, current: pd.Series, method: str = "auto"
            ) -> tuple[object, int | None]:
    profile = fit_reference(pd.DataFrame({"k": reference}), [ColumnRequest("k", method=method)])
    assert profile.columns["k"].kind == "categorical"
    scores = score_window(profile, pd.DataFrame({"k": current}))
    return scores.drift[0].result, scores.quality.columns[0].new_categories


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_one_half_in_a_whole_number_column_is_one_new_category(dtype: type) -> None:
    reference = pd.Series([0, 1, 2] * 200, dtype=dtype)
    current = pd.Series([0.0, 1.0, 2.0] * 100 + [0.5])
    result, new = _scored(reference, current)
    assert new == 1
    expected = chi2_contingency(_table(reference, current), correction=False)
    assert result.method == "chisquare"  # type: ignore[attr-defined]
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)  # type: ignore[attr-defined]
    assert result.p_value > 0.5  # type: ignore[attr-defined]


def test_whole_numbers_of_a_fractional_reference_are_not_new() -> None:
    reference = pd.Series([1.0, 1.5, 2.0] * 50)
    _, new = _scored(reference, pd.Series([1.0, 2.0] * 50))
    assert new == 0
    _, new = _scored(pd.Series([1.0, 2.0] * 50), pd.Series([1.0, 1.5, 2.0] * 50))
    assert new == 1


def test_a_new_half_turns_a_binary_ztest_into_chisquare() -> None:
    reference = pd.Series([0, 1] * 100)
    current = pd.Series([0.0, 1.0] * 60 + [0.5])
    result, new = _scored(reference, current)
    assert new == 1 and result.method == "chisquare"  # type: ignore[attr-defined]
    expected = chi2_contingency(_table(reference, current), correction=False)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)  # type: ignore[attr-defined]


def test_infinities_are_categories_and_nan_is_missing() -> None:
    reference = pd.Series([0.0, 1.0, 2.0] * 100 + [-math.inf] * 3)
    current = pd.Series([0.0, 1.0, 2.0] * 50 + [math.inf, math.inf, -math.inf, math.nan])
    profile = fit_reference(pd.DataFrame({"k": reference}), [ColumnRequest("k")])
    ref_profile = profile.columns["k"].categorical
    assert ref_profile is not None and "-inf" in ref_profile.categories
    scores = score_window(profile, pd.DataFrame({"k": current}))
    quality = scores.quality.columns[0]
    assert quality.new_categories == 1  # +inf; -inf is in the reference
    assert quality.missing_fraction == 1 / current.size
    expected = chi2_contingency(_table(reference, current), correction=False)
    assert scores.drift[0].result.p_value == pytest.approx(expected.pvalue, rel=1e-12)


def test_whole_floats_beyond_int64_stay_distinct() -> None:
    big = [1e19, 2e19, 3e19, 2.0 ** 64]
    reference = pd.Series(big * 50)
    result, new = _scored(reference, pd.Series(big * 30))
    assert new == 0
    assert result.p_value == pytest.approx(1.0)  # type: ignore[attr-defined]
    profile = fit_reference(pd.DataFrame({"k": reference}), [ColumnRequest("k")])
    categorical = profile.columns["k"].categorical
    assert categorical is not None and categorical.n_unique == len(big)
    _, new = _scored(reference, pd.Series(big * 30 + [4e19]))
    assert new == 1


def test_a_categorical_method_on_a_continuous_column_counts_exactly() -> None:
    rng = np.random.default_rng(7)
    reference = pd.Series(np.round(rng.normal(size=400), 1))
    current = pd.Series(np.round(rng.normal(size=300), 1))
    result, new = _scored(reference, current, method="chisquare")
    ref, cur = _oracle(reference.tolist()), _oracle(current.tolist())
    assert new == len(set(cur) - set(ref))
    expected = chi2_contingency(_table(reference, current), correction=False)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- end to end


def _spec() -> ModelMonitorSpec:
    return ModelMonitorSpec.model_validate({
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "dataQuality": {"newCategories": {"max": 0}},
    })


def test_check_on_csv_files_counts_integer_coded_columns_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({
        "grade": np.repeat([0, 1, 2], 200),             # read back as int64
        "step": np.tile([1.0, 1.5, 2.0], 200),          # fractional reference
        "big": np.tile([1e19, 2e19, 3e19], 200),        # whole, beyond int64
        "x": rng.normal(size=600),
    })
    current = pd.DataFrame({
        "grade": np.append(np.repeat([0.0, 1.0, 2.0], 100), 0.5),  # read back as float64
        "step": np.append(np.tile([1.0, 2.0], 150), 1.0),
        "big": np.append(np.tile([1e19, 2e19, 3e19], 100), math.inf),
        "x": rng.normal(size=301),
    })
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    read_ref, read_cur = pd.read_csv(tmp_path / "ref.csv"), pd.read_csv(tmp_path / "cur.csv")
    assert read_ref["grade"].dtype == np.int64 and read_cur["big"].dtype == np.float64

    st = run_check(_spec(), base_dir=tmp_path)
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True", ready
    assert st.data_quality is not None and st.drift is not None
    new = {c.name: c.new_categories for c in st.data_quality.columns}
    assert new == {"grade": 1, "step": 0, "big": 1, "x": None}
    assert {f.name for f in st.findings} == {"dataQuality.newCategories.grade",
                                            "dataQuality.newCategories.big"}
    drift = {f.name: f for f in st.drift.features}
    for name in ("grade", "step", "big"):
        assert drift[name].method == "chisquare"
        expected = chi2_contingency(_table(read_ref[name], read_cur[name]), correction=False)
        assert drift[name].p_value == pytest.approx(expected.pvalue, rel=1e-12), name
    assert drift["grade"].p_value is not None and drift["grade"].p_value > 0.5
