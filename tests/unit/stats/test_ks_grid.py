"""The KS statistic from the reference's rank grid and pruned refinement equals the brute
force over every pooled value (scipy's formula), bit for bit, whatever the data: random,
tied, constant, disjoint, adversarially placed windows, tiny windows, any grid size."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats

from modelmon.stats.drift.edf import KS_SPLIT, KolmogorovSmirnov, ks_statistic
from modelmon.stats.profile import fit_numeric, rank_grid

Case = tuple[str, np.ndarray, np.ndarray]


def brute_force(ref: np.ndarray, cur: np.ndarray) -> float:
    """``ks_2samp``'s statistic: both ECDFs at every pooled value."""
    ref, cur = np.sort(ref), np.sort(cur)
    pooled = np.concatenate([ref, cur])
    diff = (np.searchsorted(ref, pooled, "right") / ref.size
            - np.searchsorted(cur, pooled, "right") / cur.size)
    return max(float(diff.max()), -float(diff.min()))


def cases() -> Iterator[Case]:
    rng = np.random.default_rng(2024)
    for n, m in ((1, 1), (1, 5), (5, 1), (2, 3), (17, 40), (300, 299), (1000, 7),
                 (5000, 5000), (20_000, 3000), (3000, 20_000), (60_000, 60_000)):
        for shift in (0.0, 0.02, 0.3):
            ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
            yield f"normal {n}x{m} shift={shift}", ref, cur
            yield f"rounded {n}x{m} shift={shift}", np.round(ref, 1), np.round(cur, 1)
            yield f"levels {n}x{m} shift={shift}", np.floor(ref * 2), np.floor(cur * 2)
    yield "constant, equal", np.full(500, 3.0), np.full(80, 3.0)
    yield "constant, apart", np.full(500, 3.0), np.full(80, 4.0)
    yield "constant window", rng.normal(size=2000), np.zeros(300)
    yield "constant reference", np.zeros(2000), rng.normal(size=300)
    yield "window below", rng.normal(size=3000), rng.normal(-50, size=700)
    yield "window above", rng.normal(size=3000), rng.normal(50, size=700)
    ref = np.sort(rng.normal(size=4000))
    yield "window in one reference gap", ref, rng.uniform(ref[1999], ref[2000], 5000)
    yield "window on the grid values", ref, rng.choice(rank_grid(ref).values, 3000)
    yield "window equal to the reference", ref, ref.copy()
    yield "window of reference values", ref, rng.choice(ref, 2500)
    evens = np.arange(0.0, 20_000.0, 2.0)
    yield "interleaved", evens, evens + 1.0
    yield "interleaved, one block offset", evens, np.concatenate([evens[:5000] + 1, evens[5000:]])
    run = np.full(5 * KS_SPLIT**3 + 1, 7.0)
    yield "long runs", np.round(rng.normal(7, 3, 30_000)), np.concatenate(
        [run, run + 1, np.round(rng.normal(7, 3, 10_000))])
    # One narrow region where the window piles up: the supremum sits inside a grid gap.
    yield "narrow pile", rng.normal(size=50_000), np.concatenate(
        [rng.normal(size=40_000), rng.normal(0.3, 0.001, 400)])
    # Spread changes: the difference is largest in two places at once.
    yield "spread", rng.normal(size=30_000), rng.normal(0, 1.05, 30_000)
    tiny = rng.normal(size=10_000)
    for m in (1, 2, 3):
        yield f"tiny window {m}", tiny, rng.normal(size=m)


CASES = list(cases())


@pytest.mark.parametrize(("label", "ref", "cur"), CASES, ids=[c[0] for c in CASES])
def test_grid_statistic_equals_brute_force(label: str, ref: np.ndarray, cur: np.ndarray
                                           ) -> None:
    want = brute_force(ref, cur)
    r, c = np.sort(ref), np.sort(cur)
    assert ks_statistic(r, c) == want
    assert ks_statistic(r, c, KolmogorovSmirnov().fit(fit_numeric(ref)).grid) == want
    for size in (2, 3, 50, r.size + 10):
        assert ks_statistic(r, c, rank_grid(r, size)) == want, size


def test_grid_statistic_equals_scipy() -> None:
    rng = np.random.default_rng(5)
    for n, m in ((12_000, 15_000), (100_000, 100_000)):
        for ref, cur in ((rng.normal(size=n), rng.normal(0.01, size=m)),
                         (np.round(rng.gamma(2, 3, n), 2), np.round(rng.gamma(2, 3.1, m), 2))):
            assert ks_statistic(np.sort(ref), np.sort(cur)) == stats.ks_2samp(ref, cur).statistic


def test_rank_grid_holds_exact_ranks() -> None:
    x = np.sort(np.round(np.random.default_rng(9).normal(size=10_000), 1))
    grid = rank_grid(x)
    assert grid.values[0] == x[0] and grid.values[-1] == x[-1]
    assert np.all(np.diff(grid.values) > 0)
    assert np.array_equal(grid.below, [np.sum(x < v) for v in grid.values])
    assert np.array_equal(grid.upto, [np.sum(x <= v) for v in grid.values])
    assert rank_grid(np.array([4.0])).values.tolist() == [4.0]
