"""Chunk distances: how far windows drawn from the reference itself lie from the rest of it.

Part of ``stats`` (numbers only), beside the drift methods: ``chunk_distances`` splits a
fitted reference column into chunks of a window's size, scores each chunk against the rest
of the reference with the column's own method, and returns the distances' count, mean and
standard deviation. ``evaluation`` turns them into a learned threshold
(``spec.drift.learnThreshold``).

The fitted reference keeps a numeric column's values sorted (and a categorical column's
counts), not in their original row order, so chunks cannot be contiguous runs of rows:
they are drawn from random permutations with a fixed seed, which makes the same reference
and chunk size always give the same numbers. Such chunks measure the sampling noise of a
window of that size, not any drift within the reference over time.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from modelmon.stats.drift.base import AnyMethod, CategoricalMethod, NumericMethod
from modelmon.stats.profile import CategoricalProfile, NumericProfile

#: Chunks scored per column and chunk size. Each costs a pass over the reference (about
#: 10 ms at a million rows); 50 estimate the spread of the distances to about 10 %, which
#: keeps the share of same-distribution windows crossing mean + 3 std under 4 % for any
#: seed (20 chunks: up to 10 %).
MAX_CHUNKS = 50

#: The seed of the permutations that deal the reference into chunks (``column_seed``
#: adds the column's name, so that columns do not share their chunks' luck).
SEED = 16

#: Window sizes are rounded to one of this many sizes per doubling (``chunk_size``).
SIZES_PER_DOUBLING = 8


@dataclass(frozen=True, slots=True)
class ChunkDistances:
    """The distances of reference chunks to the rest of the reference."""

    chunk_rows: int
    """Reference rows per chunk."""
    chunks: int
    """Chunks the reference makes (its rows // ``chunk_rows``)."""
    scored: int
    """Chunks scored (``MAX_CHUNKS``, less those the method could not score); ``mean``
    and ``std`` are of their distances."""
    mean: float
    std: float
    """Sample standard deviation (ddof=1); NaN with fewer than two scored chunks."""


def column_seed(name: str) -> int:
    """The seed of a column's permutations: fixed, and different for every name."""
    return SEED + zlib.crc32(name.encode())


def chunk_size(window_rows: int) -> int:
    """A window's row count rounded to the nearest of ``SIZES_PER_DOUBLING`` sizes per
    doubling (within about 4.4 %), so windows of slightly varying size share a chunk size;
    small counts are kept as they are."""
    if window_rows < 2 * SIZES_PER_DOUBLING:
        return max(window_rows, 1)
    step = round(SIZES_PER_DOUBLING * math.log2(window_rows))
    return round(math.pow(2.0, step / SIZES_PER_DOUBLING))


def chunk_distances(method: AnyMethod, reference: NumericProfile | CategoricalProfile,
                    reference_rows: int, chunk_rows: int, seed: int = SEED,
                    count: int = MAX_CHUNKS) -> ChunkDistances:
    """Split the reference's ``reference_rows`` rows into chunks of ``chunk_rows`` (its
    present values dealt evenly among them, so a chunk has the reference's share of
    missing values) and score ``count`` chunks against the rest with ``method``: the
    chunks of one random permutation, then of another, until ``count`` are scored (chunks
    of different permutations overlap; each is a random window-sized part of the
    reference). Fewer than two chunks: nothing is scored."""
    chunks = reference_rows // chunk_rows if chunk_rows > 0 else 0
    if chunks < 2 or reference.n_present < chunks:
        return ChunkDistances(chunk_rows, chunks, 0, math.nan, math.nan)
    bounds = np.linspace(0, reference.n_present, chunks + 1).astype(np.intp)
    rng = np.random.default_rng(seed)
    distances: list[float | None] = []
    while len(distances) < count:
        take = range(min(chunks, count - len(distances)))
        if isinstance(reference, NumericProfile):
            assert isinstance(method, NumericMethod)
            order = rng.permutation(reference.n_present)
            distances += [_numeric(method, reference, np.sort(order[bounds[i]:bounds[i + 1]]))
                          for i in take]
        else:
            assert not isinstance(method, NumericMethod)
            labels = rng.permutation(np.repeat(
                np.arange(reference.counts.size, dtype=np.intp), reference.counts))
            distances += [_categorical(method, reference, labels[bounds[i]:bounds[i + 1]])
                          for i in take]
    kept = np.array([d for d in distances if d is not None], dtype=np.float64)
    if kept.size == 0:
        return ChunkDistances(chunk_rows, chunks, 0, math.nan, math.nan)
    std = float(kept.std(ddof=1)) if kept.size > 1 else math.nan
    return ChunkDistances(chunk_rows, chunks, int(kept.size), float(kept.mean()), std)


def _numeric(method: NumericMethod, reference: NumericProfile, taken: NDArray[np.intp]
             ) -> float | None:
    """One chunk (positions ``taken`` of the sorted values, ascending) against the rest.

    The rest keeps the reference's bins and scale (standard deviation, quartiles), the
    cells and units a current window is scored in, with its own values and bin counts:
    refitting them would cost a sort of the reference per chunk and move them by no more
    than the reference's own sampling noise.
    """
    values = reference.sorted_values
    keep = np.ones(values.size, dtype=bool)
    keep[taken] = False
    rest_values = values[keep]
    rest = replace(reference, sorted_values=rest_values, n_present=int(rest_values.size),
                   n_missing=0, bin_counts=reference.bin_sorted(rest_values), grid=None)
    return method.score(method.fit(rest), values[taken], prepared=True).statistic


def _categorical(method: CategoricalMethod, reference: CategoricalProfile,
                 labels: NDArray[np.intp]) -> float | None:
    """One chunk (the category index of each of its values) against the rest."""
    taken = np.bincount(labels, minlength=reference.counts.size).astype(np.int64)
    rest = method.fit(_counts(reference, reference.counts - taken))
    return method.score(rest, _counts(reference, taken), prepared=True).statistic


def _counts(reference: CategoricalProfile, counts: NDArray[np.int64]) -> CategoricalProfile:
    """A profile of the reference's categories with these counts (empty ones dropped, as
    ``fit_categorical`` never lists a category it did not see)."""
    seen = counts > 0
    return CategoricalProfile(
        categories=tuple(c for c, s in zip(reference.categories, seen, strict=True) if s),
        counts=np.asarray(counts[seen], dtype=np.int64), n_present=int(counts.sum()),
        n_missing=0)
