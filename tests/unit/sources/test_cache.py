"""ReferenceCache: a reference is read and fitted once per version of its data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import LoadContext, Loaded, ReferenceCache, SourceError


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    path = tmp_path / "ref.parquet"
    pd.DataFrame({"x": range(100)}).to_parquet(path)
    return path


def fit(loaded: Loaded) -> float:
    return float(loaded.frame["x"].mean())


def test_read_once_across_many_checks_and_again_after_a_change(ref: Path) -> None:
    cache: ReferenceCache[float] = ReferenceCache()
    source, ctx = Source(url=str(ref)), LoadContext()
    first = cache.get("m", source, ctx, fit)
    assert first.loaded and first.built and first.value == 49.5
    for _ in range(20):
        again = cache.get("m", source, ctx, fit)
        assert not again.loaded and not again.built and again.version == first.version
    assert (cache.loads, cache.builds, cache.hits) == (1, 1, 20)
    pd.DataFrame({"x": range(10)}).to_parquet(ref)
    changed = cache.get("m", source, ctx, fit)
    assert changed.loaded and changed.built and changed.value == 4.5
    assert changed.version != first.version and cache.loads == 2


def test_keys_and_source_specs_are_separate(ref: Path, tmp_path: Path) -> None:
    cache: ReferenceCache[float] = ReferenceCache(max_bytes=2, size_of=lambda value: 1)
    ctx = LoadContext()
    cache.get("a", Source(url=str(ref)), ctx, fit)
    cache.get("b", Source(url=str(ref)), ctx, fit)
    assert cache.builds == 2
    other = tmp_path / "ref.csv"
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(other, index=False)
    assert cache.get("a", Source(url=str(other)), ctx, fit).value == 2.0  # a new spec
    cache.get("c", Source(url=str(ref)), ctx, fit)
    assert len(cache) == 2  # the least recently used key went
    cache.forget("c")
    assert len(cache) == 1


def test_a_touched_file_is_read_and_fitted_again(ref: Path) -> None:
    cache: ReferenceCache[float] = ReferenceCache()
    source, ctx = Source(url=str(ref)), LoadContext()
    cache.get("m", source, ctx, fit)
    os.utime(ref, (1_900_000_000, 1_900_000_000))  # new mtime, same bytes
    again = cache.get("m", source, ctx, fit)
    assert again.loaded and again.built  # a local file's version is its metadata


def test_failures_are_not_cached(ref: Path) -> None:
    cache: ReferenceCache[float] = ReferenceCache()
    source, ctx = Source(url=str(ref)), LoadContext()
    cache.get("m", source, ctx, fit)
    ref.unlink()
    with pytest.raises(SourceError, match="not found"):
        cache.get("m", source, ctx, fit)
    pd.DataFrame({"x": [7]}).to_parquet(ref)
    assert cache.get("m", source, ctx, fit).value == 7.0


def test_what_the_build_depends_on_rebuilds(ref: Path) -> None:
    cache: ReferenceCache[float] = ReferenceCache()
    source, ctx = Source(url=str(ref)), LoadContext()
    cache.get(("ns", "m"), source, ctx, fit, depends_on=1)
    assert not cache.get(("ns", "m"), source, ctx, fit, depends_on=1).built
    assert cache.get(("ns", "m"), source, ctx, fit, depends_on=2).built
