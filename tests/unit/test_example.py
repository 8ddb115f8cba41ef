"""The bundled example is what its script makes, and it stays small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_example_data_is_reproducible(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLES / "make_breast_cancer.py"), str(tmp_path)],
                   check=True)
    for name in ("reference.csv", "current.csv"):
        made = pd.read_csv(tmp_path / name)
        committed = pd.read_csv(EXAMPLES / "breast-cancer" / name)
        pd.testing.assert_frame_equal(made, committed, rtol=1e-5)


def test_examples_are_under_2_mb() -> None:
    size = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    assert size < 2 * 1024 * 1024
