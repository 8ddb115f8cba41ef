"""Window sketches against row mode: the same figures from aggregates as from the rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from modelmon.stats.dataset import (
    ColumnRequest,
    column_quality,
    fit_reference,
    score_column,
    score_window,
)
from modelmon.stats.sketch import (
    BINNED,
    GRID,
    ColumnSketch,
    merge,
    quantile_ranks,
    score_sketch,
    score_sketches,
    sketch_column,
    sketch_quality,
)

NUMERIC_BINNED = sorted(BINNED)
CATEGORICAL = ["psi", "jensenshannon", "hellinger", "tvd", "chisquare", "ztest"]


def _numeric(rng: np.random.Generator, size: int, *, shift: float, ties: bool) -> np.ndarray:
    values = rng.normal(shift, 1.0 + shift / 4, size)
    if ties:
        values = np.round(values * 2) / 2  # half-integers: many values on the bin edges
    return values


def _dirty(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """NaN, both infinities and values far outside the reference's range, sprinkled in."""
    out = values.copy()
    for fill in (np.nan, np.inf, -np.inf, 1e6, -1e6):
        out[rng.random(out.size) < 0.02] = fill
    return out


def _frames(seed: int, size: int, ties: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({
        "x": _numeric(rng, 3 * size, shift=0.0, ties=ties),
        "c": rng.choice(["a", "b", "c", "d"], 3 * size, p=[0.4, 0.3, 0.2, 0.1]),
        "b": rng.choice(["yes", "no"], 3 * size),
        "n": rng.integers(0, 4, 3 * size).astype(np.float64),  # few values: categories
    })
    cur = pd.DataFrame({
        "x": _dirty(rng, _numeric(rng, size, shift=0.3 * (seed % 3), ties=ties)),
        "c": pd.Series(rng.choice(["a", "b", "c", "e"], size), dtype=object)
        .where(rng.random(size) > 0.05, None),
        "b": rng.choice(["yes", "no"], size),
        "n": _dirty(rng, rng.integers(0, 5, size).astype(np.float64)),
    })
    return ref, cur


CASES = [(seed, size, ties) for seed in range(4) for size, ties in
         ((50, False), (997, True), (4000, False), (20_000, True))]


@pytest.mark.parametrize(("seed", "size", "ties"), CASES)
@pytest.mark.parametrize("method", NUMERIC_BINNED)
def test_binned_numeric_drift_equals_row_mode(seed: int, size: int, ties: bool,
                                              method: str) -> None:
    ref, cur = _frames(seed, size, ties)
    profile = fit_reference(ref, [ColumnRequest("x", method=method)]).columns["x"]
    rows = score_column(profile, cur["x"])
    sketched = score_sketch(profile, sketch_column(cur["x"], profile))
    assert rows.statistic is not None and sketched.statistic is not None
    assert sketched.statistic == pytest.approx(rows.statistic, abs=1e-9, rel=1e-9)
    assert (sketched.p_value, sketched.message) == (rows.p_value, rows.message)


@pytest.mark.parametrize(("seed", "size", "ties"), CASES)
@pytest.mark.parametrize("method", CATEGORICAL)
@pytest.mark.parametrize("column", ["c", "b", "n"])
def test_categorical_drift_equals_row_mode(seed: int, size: int, ties: bool, method: str,
                                           column: str) -> None:
    ref, cur = _frames(seed, size, ties)
    request = ColumnRequest(column, categorical=True, method=method)
    profile = fit_reference(ref, [request]).columns[column]
    rows = score_column(profile, cur[column])
    sketched = score_sketch(profile, sketch_column(cur[column], profile))
    assert sketched.message == rows.message
    for got, want in ((sketched.statistic, rows.statistic), (sketched.p_value, rows.p_value),
                      (sketched.effect_size, rows.effect_size)):
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert got == pytest.approx(want, abs=1e-9, rel=1e-9)


@pytest.mark.parametrize(("seed", "size", "ties"), CASES)
def test_window_scores_and_quality_equal_row_mode(seed: int, size: int, ties: bool) -> None:
    ref, cur = _frames(seed, size, ties)
    requests = [ColumnRequest("x", method="psi"), ColumnRequest("c"), ColumnRequest("b"),
                ColumnRequest("n"), ColumnRequest("gone")]
    reference = fit_reference(ref.assign(gone=1.0), requests)
    sketches = {str(name): sketch_column(cur[name], reference.columns[str(name)])
                for name in cur}
    rows = score_window(reference, cur)
    sketched = score_sketches(reference, sketches)
    assert [d.name for d in sketched.drift] == [d.name for d in rows.drift]
    for got, want in zip(sketched.drift, rows.drift, strict=True):
        assert got.result.method == want.result.method
        if want.result.statistic is None:
            assert got.result.statistic is None
        else:
            assert got.result.statistic == pytest.approx(want.result.statistic, abs=1e-9)
    assert sketched.quality.missing_columns == rows.quality.missing_columns == ["gone"]
    assert sketched.quality.type_changes == rows.quality.type_changes
    for got_q, want_q in zip(sketched.quality.columns, rows.quality.columns, strict=True):
        assert got_q.name == want_q.name
        assert got_q.new_categories == want_q.new_categories
        for a, b in ((got_q.missing_fraction, want_q.missing_fraction),
                     (got_q.outlier_fraction, want_q.outlier_fraction),
                     (got_q.out_of_range_fraction, want_q.out_of_range_fraction)):
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert a == pytest.approx(b, abs=1e-9)


def test_quality_of_type_change_and_all_missing() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})
    profile = fit_reference(ref, [ColumnRequest("x", method="psi")]).columns["x"]
    for values in (pd.Series(["p", "q", None]), pd.Series([None, None], dtype=object),
                   pd.Series([], dtype=np.float64)):
        sketch = sketch_column(values, profile)
        assert sketch_quality(profile, sketch) == column_quality(profile, values)
        assert score_sketch(profile, sketch).message == score_column(profile, values).message


@pytest.mark.parametrize("count", [1, 2, 7, 999, 1000, 1001, 123_457])
def test_grid_ranks_are_percentile_disc(count: int) -> None:
    ranks = quantile_ranks(count)
    for k in (0, 1, 17, 500, GRID - 1, GRID):
        # percentile_disc(p): the first value whose position reaches the fraction p.
        want = max(1, math.ceil(k * count / GRID - 1e-12))
        assert ranks[k] == want


def _band_holds(values: np.ndarray, sketch: ColumnSketch) -> None:
    """For x in [q_k, q_k+1) the empirical CDF lies in [k/G - slack, (k+1)/G + slack]."""
    assert sketch.numeric is not None
    grid, slack = sketch.numeric.quantiles, sketch.numeric.slack
    finite = np.sort(values[np.isfinite(values)])
    probes = np.unique(np.concatenate([finite, grid]))
    cdf = np.searchsorted(finite, probes, "right") / finite.size
    k = np.searchsorted(grid, probes, "right") - 1
    steps = grid.size - 1
    inside = k < steps
    assert np.all(cdf[inside] >= k[inside] / steps - slack - 1e-12)
    assert np.all(cdf[inside] <= (k[inside] + 1) / steps + slack + 1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunks", [2, 5])
def test_merged_chunks_equal_the_whole(seed: int, chunks: int) -> None:
    ref, cur = _frames(seed, 6000, ties=seed % 2 == 0)
    reference = fit_reference(ref, [ColumnRequest("x", method="hellinger"),
                                    ColumnRequest("c")])
    for name in ("x", "c"):
        profile = reference.columns[name]
        whole = sketch_column(cur[name], profile)
        bounds = np.linspace(0, len(cur), chunks + 1).astype(int)
        parts = [sketch_column(cur[name].iloc[start:stop], profile)
                 for start, stop in itertools.pairwise(bounds)]
        folded = parts[0]
        for part in parts[1:]:
            folded = merge(folded, part)
        assert (folded.rows, folded.missing, folded.kind) == (whole.rows, whole.missing,
                                                              whole.kind)
        assert score_sketch(profile, folded) == score_sketch(profile, whole)
        assert sketch_quality(profile, folded) == sketch_quality(profile, whole)
        if name == "x":
            assert folded.numeric is not None and whole.numeric is not None
            np.testing.assert_array_equal(folded.numeric.bin_counts, whole.numeric.bin_counts)
            assert folded.numeric.slack == pytest.approx((chunks - 1) / GRID)
            assert whole.numeric.slack == 0.0
            _band_holds(cur[name].to_numpy(), whole)
            _band_holds(cur[name].to_numpy(), folded)


def test_methods_that_read_every_value_are_not_scored() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=500)})
    for method in ("anderson", "cvm", "energy"):
        profile = fit_reference(ref, [ColumnRequest("x", method=method)]).columns["x"]
        result = score_sketch(profile, sketch_column(pd.Series(rng.normal(size=50)), profile))
        assert result.statistic is None and result.message is not None
        assert method in result.message


@pytest.mark.parametrize(("seed", "size", "ties"), CASES)
@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_grid_methods_within_their_bound(seed: int, size: int, ties: bool, method: str) -> None:
    ref, cur = _frames(seed, size, ties)
    profile = fit_reference(ref, [ColumnRequest("x", method=method)]).columns["x"]
    rows = score_column(profile, cur["x"])
    whole = sketch_column(cur["x"], profile)
    halves = merge(sketch_column(cur["x"].iloc[: size // 3], profile),
                   sketch_column(cur["x"].iloc[size // 3:], profile))
    assert rows.statistic is not None
    if size <= GRID:  # the grid holds every value: scored exactly
        assert score_sketch(profile, whole) == rows
    bounds = []
    for sketch in (halves,) if size <= GRID else (whole, halves):
        got = score_sketch(profile, sketch)
        assert got.statistic is not None and got.error_bound is not None
        assert abs(got.statistic - rows.statistic) <= got.error_bound + 1e-12
        assert got.message is not None and "quantile grid" in got.message
        bounds.append(got.error_bound)
    assert bounds[0] <= bounds[-1]  # a merged grid is looser
    if method == "ks":
        assert bounds[-1] == pytest.approx(2 / GRID)  # 1/G, and 1/G of slack from the merge


def test_grid_bound_is_tight_enough_to_matter() -> None:
    """The grid's figure moves with the data: a shifted window is told from an unshifted
    one by far more than the bound."""
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"x": rng.normal(size=20_000)})
    for method in ("ks", "wasserstein"):
        profile = fit_reference(ref, [ColumnRequest("x", method=method)]).columns["x"]
        same = score_sketch(profile, sketch_column(pd.Series(rng.normal(size=50_000)), profile))
        moved = score_sketch(profile,
                             sketch_column(pd.Series(rng.normal(0.2, 1, 50_000)), profile))
        assert same.statistic is not None and moved.statistic is not None
        assert same.error_bound is not None and same.error_bound < 0.01
        assert moved.statistic - same.statistic > 10 * same.error_bound


@pytest.mark.parametrize("values", [
    pd.Series(["b", "a", None, "b", "c"]),
    pd.Series([1, 2, 2, 3], dtype=np.int64),
    pd.Series([1.0, 2.5, np.nan, -0.0, 0.0, np.inf, 2.5]),
    pd.Series([True, False, True]),
    pd.Series([1, "1", True, 2.0, None], dtype=object),
])
def test_counted_categories_equal_fit_categorical(values: pd.Series) -> None:
    from modelmon.stats.profile import fit_categorical
    from modelmon.stats.sketch import counted_categories

    present = values[values.notna()]
    counted = present.value_counts(sort=False, dropna=True)
    # value_counts merges True and 1; count distinct objects by (type, value) instead.
    pairs: dict[tuple[str, object], int] = {}
    for value in present.tolist():
        key = (type(value).__name__, value)
        pairs[key] = pairs.get(key, 0) + 1
    distinct = pd.Series([v for _, v in pairs], dtype=values.dtype)
    got = counted_categories(distinct, list(pairs.values()), int(values.isna().sum()))
    want = fit_categorical(values)
    assert got.categories == want.categories
    np.testing.assert_array_equal(got.counts, want.counts)
    assert (got.n_present, got.n_missing) == (want.n_present, want.n_missing)
    assert int(counted.sum()) == got.n_present
