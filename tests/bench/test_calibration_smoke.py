"""Smoke test of the calibration benchmark (``benchmarks/calibration.py --quick``): the
report's structure and that rates are computed from counts, never the rates' values (a few
splits are noise)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelmon.stats.drift import methods

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "calibration.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration import (  # noqa: E402
    BAND,
    FLOOR_SHIFTS,
    KINDS,
    POWER_CHANGES,
)
from peers import bench_python  # noqa: E402


def run(tmp_path: Path, *extra: str
        ) -> tuple[dict[str, Any], str, subprocess.CompletedProcess[str]]:
    out, raw = tmp_path / "CALIBRATION.md", tmp_path / "calibration.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--json", str(raw),
         *extra], check=False, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr
    return json.loads(raw.read_text()), out.read_text(), proc


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading``, split into cells."""
    after = text.split(heading, 1)[1]
    rows = []
    started = False
    for line in after.splitlines():
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif started:
            break
    return rows[2:]  # without the header and the alignment row


@pytest.mark.timeout(300)
def test_quick_run_counts_every_method_and_renders_every_table(tmp_path: Path) -> None:
    run_, text, proc = run(tmp_path, "--no-evidently")

    p_methods = {m.name for m in methods() if m.uses_p_value}
    sizes = {(r["ref_rows"], r["cur_rows"]) for r in run_["null"]}
    assert len(sizes) >= 2
    # Every p-value method and auto scored every kind of its family at every size.
    for size in sizes:
        for kind in KINDS.values():
            got = {r["method"] for r in run_["null"]
                   if r["kind"] == kind.name and (r["ref_rows"], r["cur_rows"]) == size}
            family = "categorical" if kind.categorical else "numeric"
            want = {m.name for m in methods() if m.uses_p_value and m.kind == family}
            if kind.name != "binary":  # ztest scores two categories only
                want -= {"ztest"}
            assert got == want | {"auto"}, (kind.name, size, got)
    for r in run_["null"]:
        assert 0 < r["scored"] <= r["splits"] == run_["meta"]["null_splits"]
        assert 0 <= r["raw"] <= r["scored"]
        assert sum(r["used"].values()) == r["splits"]
        if r["method"] != "auto":
            assert set(r["used"]) == {r["method"]}

    # The null tables: one per size, a column per p-value method, a row per kind, and each
    # figure the count over the splits, marked when outside the band.
    null = {(r["kind"], r["method"], r["ref_rows"], r["cur_rows"]): r for r in run_["null"]}
    for ref_rows, cur_rows in sizes:
        heading = f"### {ref_rows:,} vs {cur_rows:,} rows"
        header = text.split(heading, 1)[1].split("\n")[2]
        columns = [c.strip() for c in header.strip("|").split("|")]
        assert p_methods | {"auto"} <= set(columns)
        rows = table_rows(text, heading)
        assert [r[0] for r in rows] == list(KINDS)
        for row in rows:
            for method in p_methods | {"auto"}:
                cell = row[columns.index(method)]
                r = null.get((row[0], method, ref_rows, cur_rows))
                if r is None:
                    assert cell == ""
                    continue
                rate = r["raw"] / r["scored"]
                assert float(re.sub(r"[*✗ ]", "", cell)) == pytest.approx(rate, abs=5e-4)
                assert ("✗" in cell) == (not BAND[0] <= rate <= BAND[1])

    # Power: every scenario at every power size, auto with its verdict and raw flags.
    power_sizes = {(r["ref_rows"], r["cur_rows"]) for r in run_["power"]}
    assert len(run_["power"]) == len(power_sizes) * sum(map(len, POWER_CHANGES.values()))
    for r in run_["power"]:
        assert r["method"] == "auto" and r["splits"] == run_["meta"]["power_splits"]
        assert 0 <= r["verdict"] <= r["no_floor"] <= r["splits"]
    assert "## Power against Evidently's defaults" in text
    assert "Evidently not run" in text

    # The floor table: each shift at each size, ks and auto, with and without the floor.
    floor = run_["floor"]
    assert {(r["rows"], r["shift"], r["method"]) for r in floor} == {
        (int(n), s, m) for n in run_["meta"]["floor_splits"] for s in FLOOR_SHIFTS
        for m in ("ks", "auto")}
    for r in floor:
        assert 0 <= r["verdict"] <= r["no_floor"] <= r["splits"]
    assert len(table_rows(text, "## The effect floor")) == len(floor) // 2

    # The summary comes first and counts what the tables show.
    outside = sum(not BAND[0] <= r["raw"] / r["scored"] <= BAND[1] for r in run_["null"])
    assert text.index("## Summary") < text.index("## False alarms without drift")
    assert f"{len(run_['null']) - outside} of {len(run_['null'])} cells within" in text

    # The header says how the report was made.
    assert "--quick" in text and "quick mode" in text
    for word in ("modelmon", "numpy", "scipy", "nproc", "seed"):
        assert word in text
    # The one-line summary counts the cells outside the band.
    assert proc.stdout.strip().splitlines()[-1].startswith(
        f"calibration: {outside} of {len(run_['null'])} modelmon null cells outside")

    # Re-rendered from the saved figures: the same report; --strict fails on the band.
    again = tmp_path / "again.md"
    rerender = subprocess.run(
        [sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "calibration.json"),
         "--out", str(again), "--strict"], check=False, capture_output=True, text=True,
        timeout=60)
    assert again.read_text() == text
    assert rerender.returncode == (1 if outside else 0)


@pytest.mark.timeout(300)
@pytest.mark.skipif(bench_python() is None, reason="no benchmark virtualenv (make bench)")
def test_quick_run_scores_the_same_cells_with_evidently(tmp_path: Path) -> None:
    run_, text, _ = run(tmp_path, "--splits", "10", "--power-splits", "4",
                        "--floor-rows", "1000", "--evidently-workers", "1")
    evidently = {c["key"]: c for c in run_["evidently"]}
    assert run_["meta"]["evidently_versions"]["evidently"]
    # Every power cell and every kind's null cell at the power sizes, 4 splits each.
    for r in run_["power"]:
        assert evidently[r["key"]]["splits"] == 4
        assert 0 <= evidently[r["key"]]["flagged"] <= 4
    nulls = [k for k in evidently if k.startswith("null-")]
    assert len(nulls) == len(KINDS) * len({(r["ref_rows"], r["cur_rows"])
                                           for r in run_["power"]})
    assert "Evidently default" in text and "Evidently not run" not in text
