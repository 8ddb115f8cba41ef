"""Multiple-testing corrections: the p-values of a family of tests, adjusted.

Part of ``stats`` (third stop on the data line): numbers only. Evaluation decides which
tests form a family (the features a test scored) and holds the adjusted p-values against
the thresholds. Benjamini-Hochberg is scipy's ``false_discovery_control``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The corrections, as ``spec.drift.correction`` names them.
CORRECTIONS = ("none", "bonferroni", "fdr")


def adjusted_p_values(p_values: Sequence[float], correction: str) -> list[float]:
    """``p_values`` adjusted for being tested together: unchanged (none), times their count
    capped at 1 (bonferroni, family-wise error rate), or Benjamini-Hochberg (fdr, false
    discovery rate). Order is kept."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; use one of {CORRECTIONS}")
    if correction == "none" or not p_values:
        return [float(p) for p in p_values]
    if correction == "bonferroni":
        return [min(1.0, float(p) * len(p_values)) for p in p_values]
    from scipy import stats  # imported when a correction is asked for: it is slow to import

    return [float(p) for p in stats.false_discovery_control(list(p_values), method="bh")]
