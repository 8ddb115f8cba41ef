"""Make the breast-cancer example's data: reference and a drifted current window.

Source: scikit-learn's bundled Wisconsin breast-cancer dataset (569 rows, no download).
A logistic-regression model is trained on one part; the reference is a held-out part with
the model's predictions; the current window is the rest, with three features shifted (as
if a new scanner measured larger cells), a new clinic mix and one clinic sending no texture
values. The shifted features push predictions wrong, so performance drops too.

    python examples/make_breast_cancer.py [OUTDIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = 20261124
FEATURES = [
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness",
    "mean compactness", "mean concavity", "mean symmetry",
]
SHIFTED = {"mean radius": 0.6, "mean perimeter": 0.6, "mean area": 0.6}  # in reference stds


def snake(name: str) -> str:
    return name.replace(" ", "_")


def make(outdir: Path) -> None:
    rng = np.random.default_rng(SEED)
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[[*FEATURES, "target"]].rename(columns=snake)
    # In sklearn's data 0 is malignant; make malignant the positive class (1).
    frame["target"] = 1 - frame["target"]
    frame.insert(0, "patient_id", np.arange(10_000, 10_000 + len(frame)))
    frame["clinic"] = rng.choice(["north", "south", "east"], size=len(frame), p=[0.5, 0.3, 0.2])

    shuffled = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    train, ref, cur = shuffled.iloc[:170], shuffled.iloc[170:370].copy(), shuffled.iloc[370:]
    cols = [snake(f) for f in FEATURES]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[cols], train["target"])

    cur = cur.copy()
    for name, k in SHIFTED.items():
        col = snake(name)
        cur[col] = cur[col] + k * ref[col].std()
    cur["clinic"] = rng.choice(["north", "south", "east", "west"], size=len(cur),
                               p=[0.2, 0.3, 0.2, 0.3])
    cur.loc[cur["clinic"] == "west", "mean_texture"] = np.nan

    for part in (ref, cur):
        x = part[cols].fillna(ref["mean_texture"].median())
        proba = model.predict_proba(x)[:, 1]
        part["malignant_probability"] = proba.round(6)
        part["prediction"] = (proba >= 0.5).astype(int)
    cur["scored_at"] = pd.date_range("2026-11-24T00:00:00Z", periods=len(cur), freq="5min")

    outdir.mkdir(parents=True, exist_ok=True)
    ref.to_csv(outdir / "reference.csv", index=False, float_format="%.6g")
    cur.to_csv(outdir / "current.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "breast-cancer")
