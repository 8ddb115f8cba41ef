"""Smoke test of the estimation benchmark (``benchmarks/estimation.py --quick``): the
report's structure, and that its figures are computed from the estimates and the drawn
labels, never their values (three windows are noise)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "estimation.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from estimation import (  # noqa: E402
    JUDGED,
    METRICS,
    SCENARIOS,
    SEED,
    SPEED_GOAL,
    at_most,
    draw_spread,
    generate,
    realized,
)
from peers import bench_python  # noqa: E402


def run(tmp_path: Path, *extra: str
        ) -> tuple[dict[str, Any], str, subprocess.CompletedProcess[str]]:
    out, raw = tmp_path / "ESTIMATION.md", tmp_path / "estimation.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--max-load", "1000", "--out", str(out),
         "--json", str(raw), *extra], check=False, cwd=ROOT, capture_output=True, text=True,
        timeout=280)
    assert proc.returncode == 0, proc.stderr
    return json.loads(raw.read_text()), out.read_text(), proc


def table(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading``, split into cells."""
    rows: list[list[str]] = []
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_data_are_deterministic_and_shifts_do_what_they_say() -> None:
    a = generate("binary", "harmful", 1000, 2, SEED)
    b = generate("binary", "harmful", 1000, 2, SEED)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # Concept shift leaves the model's inputs and outputs as they are; only labels change.
    none, concept = (generate("binary", s, 4000, 2, SEED) for s in ("none", "concept"))
    assert none["proba"].shape == concept["proba"].shape
    late = slice(2000, 4000)
    assert (realized("binary", {k: v[late] for k, v in concept.items()})["accuracy"]
            < realized("binary", {k: v[late] for k, v in none.items()})["accuracy"])


def _figures(run_: dict[str, Any], tool: str, task: str, scenario: str, metric: str
             ) -> tuple[float, float]:
    estimates = run_["tools"][tool]["tasks"][task]["windows"][scenario]
    truth = [t[metric] for t in run_["truth"][task][scenario]]
    assert len(estimates) == len(truth) == run_["meta"]["windows"]
    mae = statistics.fmean(abs(e[metric][0] - t) for e, t in zip(estimates, truth,
                                                                strict=True))
    inside = statistics.fmean(e[metric][1] <= t <= e[metric][2]
                              for e, t in zip(estimates, truth, strict=True))
    return mae, inside


@pytest.mark.timeout(300)
def test_quick_run_without_nannyml_renders_every_cell(tmp_path: Path) -> None:
    run_, text, _ = run(tmp_path, "--no-nannyml")
    assert set(run_["tools"]) == {"modelmon"}
    rows = table(text, "## Accuracy")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (task, scenario, metric) for task, metrics in METRICS.items()
        for scenario in SCENARIOS for metric in metrics]
    for row in rows:
        mae, inside = _figures(run_, "modelmon", row[0], row[1], row[2])
        assert float(row[4]) == pytest.approx(mae, abs=1e-5)
        assert row[8] == f"{inside:.0%}"
        assert row[5] == row[6] == "-" and row[7] == "NannyML not run"
    speed = table(text, "## Speed")
    assert [r[0] for r in speed] == list(METRICS)
    assert all(r[5] == "-" for r in speed)
    assert "NannyML not run: no goal is judged." in text
    assert "--quick" in text and "quick mode" in text
    for word in ("modelmon", "numpy", "scikit-learn", "nproc", f"seeds {SEED} to {SEED}"):
        assert word in text
    assert "Concept shift: what estimation cannot see" in text
    # The windows' truth is the drawn labels' metric, recomputed here.
    rows_per = run_["meta"]["window_rows"]
    data = generate("regression", "harmful", rows_per * run_["meta"]["windows"],
                    run_["meta"]["windows"], SEED)
    last = {k: v[-rows_per:] for k, v in data.items()}
    assert run_["truth"]["regression"]["harmful"][-1] == realized("regression", last)

    again = tmp_path / "again.md"
    subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "estimation.json"),
                    "--out", str(again)], check=True, capture_output=True, timeout=60)
    assert again.read_text() == text


@pytest.mark.timeout(300)
@pytest.mark.skipif(bench_python() is None, reason="no benchmark virtualenv (make bench)")
def test_quick_run_with_nannyml_judges_from_the_figures(tmp_path: Path) -> None:
    run_, text, proc = run(tmp_path, "--rounds", "2")
    assert run_["tools"]["nannyml"]["versions"]["nannyml"]
    held = cells = 0
    for row in table(text, "## Accuracy"):
        ours, _ = _figures(run_, "modelmon", row[0], row[1], row[2])
        theirs, theirs_inside = _figures(run_, "nannyml", row[0], row[1], row[2])
        assert float(row[5]) == pytest.approx(theirs, abs=1e-5)
        assert float(row[6]) == pytest.approx(ours - theirs, rel=0.06, abs=1e-12)
        assert row[9] == f"{theirs_inside:.0%}"
        if row[1] in JUDGED:
            assert row[7] == ("✓" if at_most(ours, theirs) else "✗")
            held, cells = held + at_most(ours, theirs), cells + 1
        else:
            assert row[7].startswith("not judged")
    assert f"{held} of {cells} task x scenario x metric cells" in text
    for row in table(text, "## Speed"):
        task = run_["tools"]["modelmon"]["tasks"][row[0]]
        peer = run_["tools"]["nannyml"]["tasks"][row[0]]
        assert len(task["estimate_s"]) == run_["meta"]["rounds"]
        ratio = (statistics.median(statistics.median(r) for r in peer["estimate_s"])
                 / statistics.median(statistics.median(r) for r in task["estimate_s"]))
        assert math.isfinite(ratio)
        assert row[5] == f"{ratio:.1f}x"
        assert row[6] == ("✓" if ratio >= SPEED_GOAL else "✗")
    assert proc.stdout.strip().splitlines()[-1] == (
        f"estimation: accuracy at most NannyML's in {held} of {cells} cells; speed goal "
        f"held in {sum(r[6] == '✓' for r in table(text, '## Speed'))} of 3 tasks")


def test_the_difference_is_judged_against_its_spread_between_draws() -> None:
    """Draws, not windows, are the independent units: the margin is two standard errors of
    the per-draw differences of mean error; one draw gives none."""
    ours = [0.1, 0.3, 0.2, 0.2, 0.5, 0.1]  # three draws of two windows
    theirs = [0.1, 0.1, 0.2, 0.2, 0.2, 0.2]
    per_draw = [0.1, 0.0, 0.1]
    assert draw_spread(ours, theirs, 2) == pytest.approx(
        2 * statistics.stdev(per_draw) / math.sqrt(3))
    assert draw_spread(ours[:2], theirs[:2], 2) is None
    assert draw_spread(ours, None, 2) is None
    assert at_most(0.1 + 5e-10, 0.1) and not at_most(0.1 + 5e-9, 0.1)
