"""Smoke test of the benchmark (``benchmarks/run.py --quick``): modelmon and scipy only (the
peers need their own virtualenv), and the agreement figures, never a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import goals_and_agreements  # noqa: E402


@pytest.mark.timeout(300)
def test_quick_benchmark_agrees_with_scipy(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    report = tmp_path / "README.md"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
         "--tools", "modelmon,bound,scipy", "--python", "current",
         "--configs", "ks,wasserstein,sort", "--modes", "cold,steady", "--no-window",
         "--json", str(out), "--out", str(report), "--data-dir", str(tmp_path / "data")],
        check=True, cwd=ROOT, capture_output=True, text=True, timeout=280)
    run = json.loads(out.read_text())
    payload = goals_and_agreements(run)

    exact = [a for a in payload["agreements"] if a["exact_required"]]
    # KS D and p and Wasserstein on every workload; chi-square (statistic, p) and JS on (d).
    assert len(exact) == 3 * 3 + 6, exact
    assert all(a["value"] is not None and a["value"] <= 1e-9 for a in exact), exact

    for result in run["results"]:
        if result["tool"] == "bound":
            continue
        columns = result["columns"]
        shifted = [c for name, c in columns.items() if int(name[1:]) % 2 == 1]
        assert shifted and all(c["drift"] for c in shifted), (result["tool"], result["config"])

    goals = {g["name"]: g for g in payload["goals"]}
    assert any("equal scipy" in name and g["passed"] for name, g in goals.items())
    text = report.read_text()
    assert "| modelmon | ks / chisquare | cold |" in text
    assert "quick mode" in text
