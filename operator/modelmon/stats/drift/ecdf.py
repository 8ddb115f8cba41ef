"""Empirical-CDF helpers shared by the CDF tests (``cvm``, ``anderson``) and distances
(``distance``).

Part of ``stats`` (pure numpy/scipy). The reference arrives sorted in its profile; these
helpers walk both empirical CDFs together without ever sorting the reference again.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def merge_sorted(reference_sorted: NDArray[np.float64], current_sorted: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The pooled sample in ascending order, and which of its entries are current values.

    Built without sorting: current value ``j`` lands at ``searchsorted(reference, value_j)
    + j`` (before equal reference values), the reference values fill the rest in order.
    O(n + m log n).
    """
    n_ref = reference_sorted.size
    n_cur = current_sorted.size
    is_cur = np.zeros(n_ref + n_cur, dtype=bool)
    is_cur[np.searchsorted(reference_sorted, current_sorted) + np.arange(n_cur)] = True
    merged = np.empty(n_ref + n_cur, dtype=np.float64)
    merged[is_cur] = current_sorted
    merged[~is_cur] = reference_sorted
    return merged, is_cur


def run_ends(sorted_values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """True at the last entry of each run of equal values of a sorted array."""
    last = np.empty(sorted_values.size, dtype=bool)
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=last[:-1])
    last[-1:] = True
    return last


def has_ties(reference_sorted: NDArray[np.float64], reference_unique: int,
             current_sorted: NDArray[np.float64]) -> bool:
    """Whether the pooled sample repeats any value."""
    if reference_unique < reference_sorted.size:
        return True
    if current_sorted.size > 1 and bool(np.any(current_sorted[1:] == current_sorted[:-1])):
        return True
    left = np.searchsorted(reference_sorted, current_sorted, side="left")
    right = np.searchsorted(reference_sorted, current_sorted, side="right")
    return bool(np.any(left != right))
