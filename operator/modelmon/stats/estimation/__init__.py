"""Model health without labels: figures from the model's own probabilities.

Part of ``stats`` (third stop on the data line): numbers only, no verdicts. ``confidence``
gives the confidence figures of a window (mean top-class probability, the share of rows
below a cutoff, the share of rows predicted as each class).
"""

from __future__ import annotations

from modelmon.stats.estimation.confidence import (
    Confidence,
    ConfidenceInputError,
    binary_confidence,
    class_confidence,
)

__all__ = ["Confidence", "ConfidenceInputError", "binary_confidence", "class_confidence"]
