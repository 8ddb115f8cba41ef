"""The fast paths of a check agree with the straightforward computations they replace:
``score_window`` with ``score_drift`` + ``data_quality``, sorted-input shortcuts with numpy,
the quantile form of Wasserstein and the blocked KS with scipy, on unequal sizes and ties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelmon.stats.dataset import (
    ColumnRequest,
    data_quality,
    fit_reference,
    score_drift,
    score_window,
)
from modelmon.stats.drift import NumericMethod, methods
from modelmon.stats.drift.distance import W_BLOCK, _intervals, wasserstein
from modelmon.stats.drift.edf import KS_SPLIT, ks_statistic
from modelmon.stats.profile import (
    count_distinct,
    finite,
    fit_categorical,
    fit_numeric,
    is_ascending,
    sorted_finite,
    sorted_quantiles,
)

SIZES = [(1, 1), (1, 7), (7, 1), (3, 7), (10, 10), (12, 18), (100, 37), (999, 1000),
         (30_000, 20_000), (25_000, 1600 * KS_SPLIT + 5)]


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_wasserstein_and_ks_equal_scipy(n: int, m: int, decimals: int | None) -> None:
    rng = np.random.default_rng(n * 7919 + m)
    ref, cur = rng.normal(size=n), rng.normal(0.2, 1.3, size=m)
    if decimals is not None:  # ties within and across the samples
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    want = stats.wasserstein_distance(ref, cur)
    got = wasserstein(np.sort(ref), np.sort(cur))
    assert abs(got - want) <= 1e-12 * max(want, 1e-300)
    assert abs(ks_statistic(np.sort(ref), np.sort(cur))
               - stats.ks_2samp(ref, cur).statistic) <= 1e-15


def test_wasserstein_intervals_cover_the_unit_interval() -> None:
    for n, m in SIZES:
        _, ref_lengths = _intervals(np.arange(n, dtype=np.int64), m, n)
        j = np.arange(m, dtype=np.int64)
        _, cur_lengths = _intervals(j[((j + 1) * n) % m != 0], n, m)
        assert ref_lengths.sum() + cur_lengths.sum() == n * m
        assert (ref_lengths >= 0).all() and (cur_lengths > 0).all()


@pytest.mark.parametrize(("n", "m"), [(W_BLOCK * 2 + 5, W_BLOCK + 3), (W_BLOCK + 1, W_BLOCK + 1)])
def test_wasserstein_across_blocks_equals_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    ref, cur = rng.gamma(2.0, size=n), np.round(rng.gamma(2.2, size=m), 2)
    want = stats.wasserstein_distance(ref, cur)
    assert abs(wasserstein(np.sort(ref), np.sort(cur)) - want) <= 1e-12 * want


def test_ks_runs_across_block_boundaries() -> None:
    ref = np.repeat(np.arange(50.0), 400)
    cur = np.sort(np.concatenate([np.full(3 * KS_SPLIT**3 + 3, 7.0), np.arange(0.0, 50.0, 0.5)]))
    assert ks_statistic(ref, cur) == stats.ks_2samp(ref, cur).statistic


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1001])
def test_sorted_helpers_equal_numpy(n: int) -> None:
    x = np.sort(np.round(np.random.default_rng(n).lognormal(size=n), 1))
    for q in ([0.25, 0.75], np.linspace(0, 1, 11)[1:-1], [0.0, 1.0]):
        assert np.array_equal(sorted_quantiles(x, q), np.quantile(x, q))
    assert count_distinct(x) == np.unique(x).size
    assert is_ascending(x)
    assert n < 2 or not is_ascending(x[::-1]) or x[0] == x[-1]
    profile = fit_numeric(x[::-1])
    assert np.array_equal(profile.bin(x), profile.bin(x[::-1]))
    assert profile.std == pytest.approx(float(np.std(x)), rel=1e-13, abs=1e-300)


def test_finite_returns_the_array_when_all_values_are() -> None:
    x = np.arange(200_000.0)
    assert finite(x) is x
    x[150_000] = math.inf
    assert finite(x).size == x.size - 1


@pytest.mark.parametrize("size", [0, 1, 5, 1000])
def test_sorted_finite_cuts_nan_and_infinities_off_the_ends(size: int) -> None:
    rng = np.random.default_rng(size)
    for shares in ((0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.0, 0.2, 0.1), (0.3, 0.3, 0.3),
                   (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)):
        x = np.round(rng.normal(size=size), 1)
        draw = rng.random(size)
        nan, neg, pos = shares
        x[draw < nan] = math.nan
        x[(draw >= nan) & (draw < nan + neg)] = -math.inf
        x[(draw >= nan + neg) & (draw < nan + neg + pos)] = math.inf
        want = np.sort(x[np.isfinite(x)])
        for out in (None, np.empty(size + 3), x.copy()):
            got = sorted_finite(x if out is None else x.copy(), out)
            assert np.array_equal(got.values, want)
            assert (got.neg_inf, got.pos_inf, got.nan) == (
                int(np.sum(x == -math.inf)), int(np.sum(x == math.inf)),
                int(np.sum(np.isnan(x))))


def test_prepared_windows_score_as_unprepared_ones() -> None:
    """``score(prepared=True)`` on the sorted finite values equals ``score`` on the raw
    window, for every numeric method."""
    rng = np.random.default_rng(4)
    ref = fit_numeric(np.round(rng.normal(size=3000), 2))
    raw = np.round(rng.normal(0.1, size=2000), 2)
    raw[::97] = math.nan
    raw[::131] = math.inf
    ready = np.sort(raw[np.isfinite(raw)])
    for method in methods():
        if isinstance(method, NumericMethod):
            assert method.score(ref, ready, prepared=True) == method.score(ref, raw), method.name


def _one_name(value: object) -> str:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


@pytest.mark.parametrize("values", [
    ["b", "a", None, "b", math.nan],
    [3, 1, 1, 2],
    [True, False, True],
    pd.array([1, None, 1], dtype="Int64"),
    [1, 1.0, "1"],
    [1.5, 2.0, math.nan],
])
def test_categorical_fast_path_equals_the_general_one(values: object) -> None:
    series = pd.Series(values)
    # One name per value: whole numbers by their digits ("2", not "2.0"), other numbers by
    # their shortest decimal, anything else (booleans too) by its string.
    counts = series[series.notna()].map(_one_name).value_counts()
    profile = fit_categorical(series)
    assert dict(zip(profile.categories, profile.counts.tolist(), strict=True)) == counts.to_dict()
    assert list(profile.categories) == sorted(profile.categories)
    assert profile.n_missing == int(series.isna().sum())


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({
        "x": rng.normal(size=3000), "y": np.round(rng.gamma(2.0, size=3000), 1),
        "k": rng.integers(0, 4, 3000), "c": rng.choice(list("abcde"), 3000),
        "t": rng.normal(size=3000),
    })
    x = rng.normal(0.3, 1.0, size=2000)
    x[[3, 5, 8]] = [math.nan, math.inf, -math.inf]
    cur = pd.DataFrame({
        "x": x, "y": np.round(rng.gamma(2.2, size=2000), 1),
        "k": rng.integers(0, 5, 2000), "c": rng.choice(list("abcdz"), 2000),
        "t": rng.normal(size=2000),
    })
    return ref, cur


@pytest.mark.parametrize("method", ["auto", "ks", "psi", "wasserstein", "cvm", "kl"])
def test_score_window_equals_score_drift_and_data_quality(method: str) -> None:
    ref, cur = _frames()
    requests = [ColumnRequest("x", method=method), ColumnRequest("y", method=method),
                ColumnRequest("k"), ColumnRequest("c", categorical=True),
                ColumnRequest("t", role="target", method=method)]
    profile = fit_reference(ref, requests)
    features = type(profile)(profile.rows, {
        n: p for n, p in profile.columns.items() if p.request.role == "feature"})
    both = score_window(profile, cur)
    assert both.drift == score_drift(profile, cur)
    assert both.quality == data_quality(features, cur)
    missing = score_window(profile, cur.drop(columns=["y", "t"]))
    assert missing.quality.missing_columns == ["y"]


def test_quality_with_infinities_and_missing_values() -> None:
    ref, cur = _frames()
    profile = fit_reference(ref, [ColumnRequest("x"), ColumnRequest("c", categorical=True)])
    q = score_window(profile, cur).quality
    x = cur["x"].to_numpy()
    ok = x[~np.isnan(x)]
    p = profile.columns["x"].numeric
    assert p is not None
    assert q.columns[0].missing_fraction == 1 / 2000
    assert q.columns[0].outlier_fraction == np.count_nonzero(
        (ok < p.lower_fence) | (ok > p.upper_fence)) / ok.size
    assert q.columns[0].out_of_range_fraction == np.count_nonzero(
        (ok < p.minimum) | (ok > p.maximum)) / ok.size
    assert q.columns[1].new_categories == 1


def test_threads_give_the_same_figures() -> None:
    ref, cur = _frames()
    requests = [ColumnRequest(n) for n in ("x", "y", "k", "t")]
    requests.append(ColumnRequest("c", categorical=True))
    one = score_window(fit_reference(ref, requests), cur)
    two = score_window(fit_reference(ref, requests, workers=2), cur, workers=2)
    assert one == two


class _Columns:
    """A ``ColumnReader`` that counts the columns it hands out."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self.columns = list(frame.columns)
        self.reads: list[str] = []

    def __len__(self) -> int:
        return len(self._frame)

    def __getitem__(self, name: str) -> pd.Series:
        self.reads.append(name)
        return self._frame[name]


def test_a_column_reader_is_read_once_per_column() -> None:
    ref, cur = _frames()
    profile = fit_reference(ref, [ColumnRequest(n) for n in ("x", "y", "k", "t")])
    reader = _Columns(cur.drop(columns=["t"]))
    assert score_window(profile, reader) == score_window(profile, cur.drop(columns=["t"]))
    assert reader.reads == ["x", "y", "k"]
