"""``fit_reference(consume=True)``: the profile equals the ordinary fit, the frame's own
memory is sorted in place only when nothing else shares it, arrow-backed columns are
released column by column, and a frame not handed over is never touched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmon.stats.dataset import ColumnRequest, fit_reference, sortable_columns
from modelmon.stats.profile import NumericProfile

NUMERIC = ["a", "b", "c"]
REQUESTS = [ColumnRequest(n) for n in [*NUMERIC, "s"]]


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    c = rng.normal(size=3000)
    c[::7] = np.nan
    c[::11] = np.inf
    table = pa.table({"a": rng.normal(size=3000), "b": np.round(rng.gamma(2, 3, 3000), 1),
                      "c": c, "s": np.array(["x", "y", "z"] * 1000),
                      "extra": np.arange(3000.0)})
    path = tmp_path / "ref.parquet"
    pq.write_table(table, path)
    return path


def _numeric(profile: object) -> NumericProfile:
    assert isinstance(profile, NumericProfile)
    return profile


def _same(left: object, right: object) -> None:
    from modelmon.stats.dataset import ReferenceProfile

    assert isinstance(left, ReferenceProfile) and isinstance(right, ReferenceProfile)
    assert left.columns.keys() == right.columns.keys()
    for name, col in left.columns.items():
        other = right.columns[name]
        assert (col.kind, col.method) == (other.kind, other.method)
        if col.numeric is not None:
            ours, theirs = _numeric(col.numeric), _numeric(other.numeric)
            assert np.array_equal(ours.sorted_values, theirs.sorted_values)
            assert (ours.n_present, ours.n_missing, ours.mean, ours.std) == (
                theirs.n_present, theirs.n_missing, theirs.mean, theirs.std)
        if col.categorical is not None:
            assert other.categorical is not None
            assert col.categorical.categories == other.categorical.categories
            assert np.array_equal(col.categorical.counts, other.categorical.counts)


def test_consuming_a_consolidated_frame_sorts_its_blocks_in_place(parquet: Path) -> None:
    want = fit_reference(pq.read_table(parquet).to_pandas(), REQUESTS)
    frame = pq.read_table(parquet, columns=[*NUMERIC, "s"]).to_pandas()
    block = frame._mgr.blocks[0].values  # the float block: a, b, c
    got = fit_reference(frame, REQUESTS, consume=True)
    _same(got, want)
    for name in NUMERIC:
        assert np.shares_memory(_numeric(got.columns[name].numeric).sorted_values, block)
    assert list(frame.columns) == NUMERIC  # sorted in place, the string column released


def test_a_block_with_unrequested_columns_is_copied(parquet: Path) -> None:
    """Sorting ``a`` in place would keep the unrequested ``extra`` alive with the profile,
    in the frame's block or in the larger array a block is a view of."""
    frame = pq.read_table(parquet).to_pandas()
    assert sortable_columns(frame, NUMERIC) == {}
    assert sortable_columns(frame.drop(columns="extra"), NUMERIC) == {}
    want = fit_reference(pq.read_table(parquet).to_pandas(), REQUESTS)
    _same(fit_reference(frame, REQUESTS, consume=True), want)
    assert list(frame.columns) == ["extra"]


def test_shared_memory_is_never_sorted(parquet: Path) -> None:
    """A frame that shares its blocks with another (pandas' lazy copies) is copied from,
    and the other frame keeps its order."""
    original = pq.read_table(parquet).to_pandas().drop(columns="extra")
    kept = original.copy(deep=True)
    shared = original[[*NUMERIC, "s"]]
    assert sortable_columns(shared, NUMERIC) == {}
    fit_reference(shared, REQUESTS, consume=True)
    pd.testing.assert_frame_equal(original, kept)


def test_without_consume_the_frame_is_untouched(parquet: Path) -> None:
    frame = pq.read_table(parquet).to_pandas().drop(columns="extra")
    kept = frame.copy(deep=True)
    fit_reference(frame, REQUESTS)
    fit_reference(frame, REQUESTS, workers=2)
    pd.testing.assert_frame_equal(frame, kept)


def test_arrow_backed_columns_are_released_one_by_one(parquet: Path) -> None:
    """``modelmon check``'s parquet frames share arrow's read-only buffers: they are
    copied and each column leaves the frame once fitted; threads give the same profile."""
    from modelmon.sources.url import read_parquet

    want = fit_reference(read_parquet(str(parquet), None), REQUESTS)
    for workers in (1, 2):
        frame = read_parquet(str(parquet), None)
        assert sortable_columns(frame, NUMERIC) == {}
        _same(fit_reference(frame, REQUESTS, workers, consume=True), want)
        assert list(frame.columns) == ["extra"]


def test_consume_with_a_column_requested_twice(parquet: Path) -> None:
    frame = pq.read_table(parquet).to_pandas()
    twice = [ColumnRequest("a"), ColumnRequest("a", role="target")]
    profile = fit_reference(frame, twice, consume=True)
    assert "a" in profile.columns and "a" in frame.columns
