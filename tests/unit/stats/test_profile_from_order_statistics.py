"""A numeric profile's quartiles and bin edges from a few order statistics (what a
database returns with reference.source.sql.pushdown) against ``fit_numeric``'s from the
values: the same numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from modelmon.stats.profile import (
    aggregated_edges,
    aggregated_numeric,
    fit_numeric,
    fit_ranks,
    grid_ranks,
)


def samples() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(0, 1, 1), rng.normal(0, 1, 2), rng.normal(5, 3, 17),
            rng.integers(0, 4, 500).astype(float),  # heavy ties: edges collapse
            np.round(rng.gamma(2, 50, 3001), 1), rng.normal(1e6, 1e-3, 999),
            np.concatenate([np.zeros(900), rng.normal(0, 1, 101)])]


@pytest.mark.parametrize("values", samples())
def test_order_statistics_give_fit_numerics_edges_and_quartiles(values: np.ndarray) -> None:
    want = fit_numeric(values)
    ordered = np.sort(values)
    count = ordered.size
    ranks = sorted(set(fit_ranks(count)) | set(grid_ranks(count, 100).tolist()))
    assert all(1 <= r <= count for r in ranks)
    order = {r: float(ordered[r - 1]) for r in ranks}
    lower, upper, edges = aggregated_edges(order, count)
    assert (lower, upper) == (want.lower_quartile, want.upper_quartile)
    assert np.array_equal(edges, want.bin_edges)
    centre = float(ordered.sum()) / count
    got = aggregated_numeric(
        n_present=count, n_missing=3, n_unique=want.n_unique, total=float(ordered.sum()),
        centred_squares=float(((ordered - centre) ** 2).sum()), minimum=float(ordered[0]),
        maximum=float(ordered[-1]), order=order, bin_counts=want.bin_counts.tolist(),
        steps=100)
    assert got.std == pytest.approx(want.std, rel=1e-9, abs=1e-12)
    assert got.mean == pytest.approx(want.mean, rel=1e-12)
    if count <= 100:  # the grid holds every value
        assert got.quantiles is None
        assert np.array_equal(got.sorted_values, ordered)
    else:
        assert got.quantiles is not None and got.sorted_values.size == 100
        assert np.array_equal(got.quantiles, ordered[grid_ranks(count, 100) - 1])


def test_missing_order_statistics_are_noticed() -> None:
    ordered = np.arange(50, dtype=float)
    order = {r: float(ordered[r - 1]) for r in fit_ranks(50)[1:]}
    with pytest.raises(KeyError):
        aggregated_edges(order, 50)
