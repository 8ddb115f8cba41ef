"""The thread helper of ``stats.dataset``: how many threads a check may use, and a map
over columns in that many.

Part of ``stats`` (third stop on the data line): fitting a reference
(``dataset.reference``) and scoring a window (``dataset.window``) both work column by
column, and numpy's sorts and searches release the GIL, so columns can run in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

#: Threads for one check that runs alone (``modelmon check``): numpy's sorts and searches
#: release the GIL, so columns score in parallel; beyond four a window rarely gains more.
ALONE_MAX_WORKERS = 4
#: Windows of fewer values (rows x columns) score in one thread: starting threads would
#: cost more than they save.
PARALLEL_MIN_VALUES = 200_000


def alone_workers(rows: int, columns: int) -> int:
    """Threads for a check of ``columns`` columns of ``rows`` rows that has the machine to
    itself: one per core up to ``ALONE_MAX_WORKERS`` (and the column count), or one for a
    small window. A caller that runs many checks at once (the operator) uses one each."""
    if rows * columns < PARALLEL_MIN_VALUES:
        return 1
    return max(1, min(os.cpu_count() or 1, ALONE_MAX_WORKERS, columns))


Item = TypeVar("Item")
Mapped = TypeVar("Mapped")


def map_in_threads(func: Callable[[Item], Mapped], items: Sequence[Item],
                   workers: int) -> list[Mapped]:
    """``[func(item) for item in items]``, in ``workers`` threads when more than one."""
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))
