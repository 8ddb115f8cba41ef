"""ReferenceCache's byte bound: the least recently used values go until the rest fit, and
a value larger than the whole budget is used once but not kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from modelmon.api.v1alpha1 import Source
from modelmon.sources import Cached, LoadContext, Loaded, ReferenceCache


@pytest.fixture
def source(tmp_path: Path) -> Source:
    path = tmp_path / "ref.parquet"
    pd.DataFrame({"x": range(10)}).to_parquet(path)
    return Source(url=str(path))


class Values:
    """Values named by their keys, of the sizes given (``size_of``)."""

    def __init__(self, sizes: dict[str, int], max_bytes: int = 100) -> None:
        self.sizes = sizes
        self.key = ""
        self.cache: ReferenceCache[str] = ReferenceCache(max_bytes=max_bytes,
                                                         size_of=self.sizes.__getitem__)

    def build(self, loaded: Loaded) -> str:
        return self.key

    def get(self, key: str, source: Source) -> Cached[str]:
        self.key = key
        return self.cache.get(key, source, LoadContext(), self.build)


def test_least_recently_used_values_go_until_the_rest_fit(source: Source) -> None:
    values = Values({"a": 40, "b": 30, "c": 20, "d": 50})
    cache = values.cache
    for key in ("a", "b", "c"):
        assert values.get(key, source).built
    assert (cache.bytes, len(cache)) == (90, 3)
    assert not values.get("a", source).built  # a hit: "a" is the most recently used now
    assert values.get("d", source).built  # 140 > 100: "b" goes (30), then "c" (20)
    assert "a" in cache and "d" in cache and "b" not in cache and "c" not in cache
    assert (cache.bytes, len(cache), cache.evictions) == (90, 2, 2)
    cache.forget("a")
    assert (cache.bytes, len(cache)) == (50, 1)
    cache.forget("a")  # forgetting twice changes nothing
    assert cache.bytes == 50


def test_a_value_over_the_whole_budget_is_used_but_not_kept(
        source: Source, caplog: pytest.LogCaptureFixture) -> None:
    values = Values({"small": 10, "big": 101})
    cache = values.cache
    values.get("small", source)
    with caplog.at_level(logging.DEBUG, logger="modelmon.sources.cache"):
        got = values.get("big", source)
    assert got.value == "big" and got.built  # the check that built it uses it
    assert "big" not in cache and "small" in cache  # nothing was evicted for it
    assert (cache.bytes, cache.oversized, cache.evictions) == (10, 1, 0)
    assert "reference of big not cached: about 101 bytes" in caplog.text
    assert "--reference-cache-bytes 100" in caplog.text
    assert values.get("big", source).built  # and it is built again at the next check
    assert cache.builds == 3


def test_a_rebuilt_value_replaces_its_old_size(source: Source, tmp_path: Path) -> None:
    values = Values({"a": 60})
    cache = values.cache
    values.get("a", source)
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    values.sizes["a"] = 30
    assert values.get("a", Source(url=str(other))).built  # a new spec rebuilds
    assert (cache.bytes, len(cache)) == (30, 1)
    values.sizes["a"] = 200  # over the budget now: the old value must not stay behind
    third = tmp_path / "third.parquet"
    pd.DataFrame({"x": [2]}).to_parquet(third)
    assert values.get("a", Source(url=str(third))).built
    assert (cache.bytes, len(cache)) == (0, 0)
