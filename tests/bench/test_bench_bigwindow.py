"""Smoke test of the big-window benchmark (``benchmarks/bigwindow.py``): a log of a few
thousand rows through the whole run (PostgreSQL from Debian's package, parquet, every check
path), the saved JSON and the report's section, and the goals' verdicts on made-up figures.
No time is asserted: only that each figure is there and that the paths agree."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bigwindow import ONE_STATEMENT, Layout, chunk, copy_rows, goals, splice  # noqa: E402

ROWS, PER_DAY, WINDOWS = 6000, 2000, (1000, 6000)


def have_postgres() -> bool:
    import glob

    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not have_postgres():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL is not installed: run hack/install-test-deps.sh")
        pytest.skip("PostgreSQL is not installed: run hack/install-test-deps.sh")
    tmp = tmp_path_factory.mktemp("bigwindow")
    # The server's files: under a directory the postgres user can enter when we are root.
    cache = Path(tempfile.mkdtemp(prefix="modelmon-bigwindow-test-", dir="/var/tmp"))
    cache.chmod(0o755)
    readme = tmp / "README.md"
    readme.write_text("# Benchmarks\n\n## Results\n\nx\n\n## What is measured\n\n- y\n")
    try:
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "bigwindow.py"), "--rows", str(ROWS),
             "--per-day", str(PER_DAY), "--windows", ",".join(map(str, WINDOWS)),
             "--repeats", "1", "--cache", str(cache), "--json", str(tmp / "run.json"),
             "--out", str(readme)],
            check=True, cwd=ROOT, capture_output=True, text=True, timeout=560)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    result: dict[str, Any] = json.loads((tmp / "run.json").read_text())
    result["readme"] = readme.read_text()
    return result


@pytest.mark.timeout(600)
def test_every_path_checked_every_window(run: dict[str, Any]) -> None:
    assert run["windows"] == list(WINDOWS) and run["rows"] == ROWS
    kinds = {(r["kind"], r["rows"]) for r in run["results"]}
    assert kinds == {("pushdown", 1000), ("sql", 1000), ("parquet", 1000),
                     ("pushdown", 6000), ("sql", 6000), ("parquet", 6000)}
    for r in run["results"]:
        assert r["code"] in (0, 1), r["error"]
        assert r["current_rows"] == r["rows"], r
        assert r["rss_mib"] > 0 and r["wall_s"] > 0 and not math.isnan(r["rss_mib"])
        if r["kind"] == "pushdown":
            assert r["scan_s"] > 0 and r["statements_s"] > 0 and r["statements"] >= 4
        assert set(r["features"]) == {"x0", "x1", "x2", "x3", "c0", "c1"}
        assert set(r["performance"]) >= {"accuracy", "f1", "brier", "logLoss"}
    for key in ("machine", "loads_before", "loads_after", "postgres", "cache", "plans"):
        assert run[key], key
    assert run["cache"]["bytes"] > 0


@pytest.mark.timeout(600)
def test_pushdown_agrees_with_row_mode(run: dict[str, Any]) -> None:
    # The binned figures and the performance metrics are exact in pushdown: the three paths
    # read the same rows. ks and wasserstein are read off the 1,000-step grid: exact in a
    # window the grid holds whole, else within the bound status states beside them.
    for rows in WINDOWS:
        by = {r["kind"]: r for r in run["results"] if r["rows"] == rows}
        for kind in ("sql", "parquet"):
            for name, figures in by["pushdown"]["features"].items():
                want = by[kind]["features"][name]["statistic"]
                bound = figures["statisticErrorBound"] or 0.0
                if figures["method"] in ("ks", "wasserstein") and rows > 1000:
                    assert bound > 0, (rows, name)
                assert abs(figures["statistic"] - want) <= bound + 1e-9 * max(1.0, abs(want)), \
                    (rows, kind, name, bound)
            for metric, value in by["pushdown"]["performance"].items():
                assert math.isclose(value, by[kind]["performance"][metric], rel_tol=1e-9,
                                    abs_tol=1e-12), (rows, kind, metric)


@pytest.mark.timeout(600)
def test_report_section_has_every_figure(run: dict[str, Any]) -> None:
    text = run["readme"]
    assert text.count("## Big windows") == 1
    assert text.index("## Big windows") < text.index("## What is measured")
    assert "| 6,000 |" in text and "| 1,000 |" in text
    assert "load average" in text and run["machine"]["cpu"] in text
    assert "peak RSS" in text and "over the scan" in text
    assert text.count("| PASS |") + text.count("| FAIL |") == 2
    kinds = [p["kind"] for p in run["plans"]]
    # One statement per window after the probe, with PostgreSQL's own forms inside.
    assert set(kinds) == {"probe", ONE_STATEMENT}
    assert "`jit = off`" in text and "percentile_disc" in text


def made_up(ratio: float, rss: float, code: int = 0) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for rows in (10, 100):
        results.append({"kind": "pushdown", "rows": rows, "code": code, "wall_s": 2.0,
                        "rss_mib": rss, "statements_s": ratio, "statements": 5,
                        "phase": "Healthy", "current_rows": rows, "features": {},
                        "performance": {}, "error": "", "scan_s": 1.0, "load": 1.0})
    return {"windows": [10, 100], "results": results}


def test_goals_pass_and_fail_on_their_bounds() -> None:
    assert [ok for *_, ok in goals(made_up(2.0, 200.0))] == [True, True]
    assert [ok for *_, ok in goals(made_up(9.0, 200.0))] == [False, True]
    assert [ok for *_, ok in goals(made_up(2.0, 400.0))] == [True, False]
    # A check that failed fails both, whatever its figures.
    assert [ok for *_, ok in goals(made_up(2.0, 200.0, code=2))] == [False, False]


def test_section_replaces_itself(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n## Big windows\n\nold\n\n## What is measured\n\n- m\n")
    splice(readme, ["## Big windows", "", "new", ""])
    text = readme.read_text()
    assert "old" not in text and "new" in text and text.count("## Big windows") == 1
    assert text.endswith("## What is measured\n\n- m\n")


def test_copy_rows_are_postgres_binary_tuples() -> None:
    values = chunk(Layout(5, per_day=5), 0, 0, 5)
    raw = copy_rows(values)
    # 10 fields a row: 2 bytes of count, 4 of length each, and the values.
    width = 2 + 10 * 4 + 8 + 4 * 8 + 2 + 3 + 8 + 4 + 4
    assert len(raw) == 5 * width
    assert int.from_bytes(raw[:2], "big") == 10
    assert int.from_bytes(raw[2:6], "big") == 8
    assert int.from_bytes(raw[6:14], "big", signed=True) == int(values["ts_us"][0])
