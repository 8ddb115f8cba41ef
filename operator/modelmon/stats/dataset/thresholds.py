"""Learned-threshold figures of a fitted reference, computed once per chunk size.

Part of ``stats`` (third stop on the data line), beside ``dataset.window``:
``chunk_distances_of`` gives, for the named columns, the distances of reference chunks of
a window's size to the rest of the reference (``stats.drift.learned``), and keeps them in
the ``ReferenceProfile``, so that a steady window size computes them once for as long as
the fitted reference is kept (``sources.ReferenceCache``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from modelmon.stats.dataset.reference import ReferenceProfile
from modelmon.stats.dataset.threads import map_in_threads
from modelmon.stats.drift.learned import ChunkDistances, chunk_distances, column_seed

#: Chunk sizes a reference keeps figures for; a new size beyond them drops the oldest.
KEPT_SIZES = 4

_lock = threading.Lock()


def chunk_distances_of(reference: ReferenceProfile, names: Collection[str], chunk_rows: int,
                       workers: int = 1) -> dict[str, ChunkDistances]:
    """The chunk distances of each named column (``workers`` columns at once in threads
    when more than one), from the reference's cache where it has them."""
    with _lock:
        kept = dict(reference.chunk_distances.get(chunk_rows, {}))
    todo = [name for name in names if name not in kept]

    def one(name: str) -> tuple[str, ChunkDistances]:
        profile = reference.columns[name]
        fitted = profile.numeric if profile.kind == "numeric" else profile.categorical
        assert fitted is not None
        return name, chunk_distances(profile.scorer, fitted, reference.rows, chunk_rows,
                                     column_seed(name))

    computed = dict(map_in_threads(one, todo, workers))
    if computed:
        with _lock:
            cache = reference.chunk_distances
            sizes = cache.setdefault(chunk_rows, {})
            sizes.update(computed)
            while len(cache) > KEPT_SIZES:
                del cache[next(iter(cache))]
    kept.update(computed)
    return {name: kept[name] for name in names}
