"""Monitors with N features on generated data, for the report's tests (unit and browser).

`write_monitor(folder, features)` writes reference.csv, current.csv and monitor.yaml: a
binary classifier whose features are numeric except every fifth, which is categorical
(categories c0..c5; the current window adds c6 and drops c0). Every third
feature drifts in the current window. Rows carry a prediction, its probability and the label,
and the monitor asks for realized and estimated accuracy, so that every section of the report
has figures. One feature has a name that needs escaping in HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

#: A feature name with every character HTML gives a meaning to.
ODD_NAME = "odd <b>name</b> & 'quote\""


def feature_names(features: int) -> list[str]:
    names = [f"f{i:03d}" for i in range(features)]
    if features >= 3:
        names[1] = ODD_NAME
    return names


def is_categorical(index: int) -> bool:
    return index % 5 == 4


def drifts(index: int) -> bool:
    return index % 3 == 0


def _frame(names: list[str], rows: int, current: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    score = np.zeros(rows)
    for i, name in enumerate(names):
        shift = current and drifts(i)
        if is_categorical(i):
            cats = ["c1", "c2", "c3", "c4", "c5", "c6"] if current else [
                "c0", "c1", "c2", "c3", "c4", "c5"]
            weights = np.array([5, 4, 3, 2, 1, 1], dtype=float)
            if shift:
                weights = weights[::-1]
            data[name] = rng.choice(cats, size=rows, p=weights / weights.sum())
        else:
            values = rng.normal(10.0 + i, 2.0, size=rows)
            if shift:
                values = values * 1.2 + 1.0 - 0.2 * (10.0 + i)  # wider, mean up by 1
            data[name] = np.round(values, 4)
            score += (values - (10.0 + i)) / 2.0 / max(len(names), 1) ** 0.5
    probability = 1 / (1 + np.exp(-score))
    target = rng.random(rows) < probability
    data["probability"] = np.round(probability, 5)
    data["prediction"] = (probability >= 0.5).astype(int)
    data["target"] = target.astype(int)
    return pd.DataFrame(data)


def monitor(name: str = "report-test") -> dict[str, Any]:
    return {
        "apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "model": {"name": "generated", "version": "1", "task": "binaryClassification"},
            "reference": {"source": {"url": "reference.csv"}},
            "current": {"source": {"url": "current.csv"}},
            "columns": {"prediction": "prediction", "predictionProbability": "probability",
                        "target": "target", "positiveLabel": "1"},
            "drift": {"datasetDriftShare": 0.3},
            "performance": {"metrics": [{"name": "accuracy", "min": 0.6},
                                        {"name": "rocAuc", "min": 0.6}],
                            "estimated": {"metrics": [{"name": "accuracy", "min": 0.6}]}},
            "dataQuality": {"missingFraction": {"max": 0.05},
                            "newCategories": {"max": 0, "severity": "warning"}},
        },
    }


def write_monitor(folder: Path, features: int, rows: int = 1000, name: str = "report-test"
                  ) -> Path:
    """The monitor's YAML file, with its data beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    names = feature_names(features)
    reference = _frame(names, rows, current=False, seed=1)
    current = _frame(names, rows, current=True, seed=2)
    categorical = [n for i, n in enumerate(names) if is_categorical(i)]
    # Some missing values in the current window of the first numeric feature.
    current.loc[current.index[:rows // 10], names[0]] = np.nan
    reference.to_csv(folder / "reference.csv", index=False)
    current.to_csv(folder / "current.csv", index=False)
    spec = monitor(name)
    if categorical:
        spec["spec"]["columns"]["categorical"] = categorical
    path = folder / "monitor.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
