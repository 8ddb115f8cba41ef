"""A three-class classifier's generated window, shared by the confidence and estimation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("setosa", "versicolor", "virginica")


def three_class_window(n: int, seed: int, sharpness: float) -> pd.DataFrame:
    """Two features, a softmax over them whose sharpness sets how confident the model is
    (columns ``p_<class>``), the top class as prediction (``species``), and labels drawn
    from the probabilities (``label``)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    logits = sharpness * np.column_stack([x1, x2, -(x1 + x2)])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    out = pd.DataFrame({"x1": x1, "x2": x2})
    for i, label in enumerate(CLASSES):
        out[f"p_{label}"] = probs[:, i]
    out["species"] = np.asarray(CLASSES)[probs.argmax(axis=1)]
    out["label"] = np.asarray(CLASSES)[[rng.choice(3, p=row) for row in probs]]
    return out
