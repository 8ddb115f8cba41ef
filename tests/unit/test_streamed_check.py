"""Checks of url windows larger than the check's memory limit: streamed, the binned methods
and data quality exactly as a whole load scores them, and a clean refusal where a method
needs a column that does not fit; the process's peak memory measured in subprocesses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelmon.api.policy import Policy
from modelmon.api.v1alpha1 import ModelMonitorSpec, ModelMonitorStatus
from modelmon.check import run_check

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMIT = 1 << 20  # 1 MiB: the windows below hold several times that


def window(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift, 10, rows)
    income[rng.random(rows) < 0.03] = np.nan
    income[rng.random(rows) < 0.001] = np.inf
    grade = rng.integers(0, 5, rows).astype(np.float64)  # few values: scored as categories
    grade[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame({
        "income": income,
        "age": np.round(rng.normal(40 + shift, 12, rows)),  # ties on the bin edges
        "region": rng.choice(["n", "s", "e", "w"] if shift else ["n", "s", "e"], rows),
        "grade": grade,
        "ts": pd.date_range(NOW - timedelta(hours=30), NOW + timedelta(hours=1),
                            periods=rows),  # a sixth of the rows outside the window
    })


def monitor(fmt: str, numeric: str = "psi", **over: Any) -> ModelMonitorSpec:
    doc: dict[str, Any] = {
        "model": {"name": "m", "task": "regression"},
        "reference": {"source": {"url": "ref.parquet"}},
        "current": {"source": {"url": f"cur.{fmt}"}, "window": "1d"},
        "columns": {"timestamp": "ts", "categorical": ["grade"]},
        "drift": {"numericMethod": numeric},
    }
    doc.update(over)
    return ModelMonitorSpec.model_validate(doc)


def check(spec: ModelMonitorSpec, base: Path, limit: int | None) -> ModelMonitorStatus:
    policy = dataclasses.replace(Policy.local(), max_memory=limit)
    return run_check(spec, base_dir=base, now=NOW, policy=policy)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("streamed")
    window(20_000, seed=1).to_parquet(base / "ref.parquet", index=False)
    current = window(240_000, seed=2, shift=1.5)
    current.to_parquet(base / "cur.parquet", index=False, row_group_size=30_000)
    current.to_csv(base / "cur.csv", index=False)
    return base


def figures(status: ModelMonitorStatus) -> dict[str, Any]:
    assert status.drift is not None and status.data_quality is not None
    return {
        "rows": status.last_check.current_rows if status.last_check else None,
        "drift": {f.name: (f.method, f.statistic, f.p_value) for f in status.drift.features},
        "quality": {q.name: (q.missing_fraction, q.outlier_fraction,
                             q.out_of_range_fraction, q.new_categories)
                    for q in status.data_quality.columns},
        "findings": sorted(f.name for f in status.findings),
    }


def assert_same(streamed: dict[str, Any], whole: dict[str, Any]) -> None:
    assert streamed["rows"] == whole["rows"] and streamed["findings"] == whole["findings"]
    assert streamed["quality"] == whole["quality"]
    assert streamed["drift"].keys() == whole["drift"].keys()
    for name, (method, statistic, p_value) in whole["drift"].items():
        got = streamed["drift"][name]
        assert got[0] == method, name
        assert got[1] == pytest.approx(statistic, rel=0, abs=1e-9), name
        assert (got[2] is None) == (p_value is None), name
        if p_value is not None:
            assert got[2] == pytest.approx(p_value, rel=0, abs=1e-9), name


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("numeric", ["psi", "jensenshannon", "kl", "hellinger"])
def test_binned_methods_score_a_window_over_the_limit_exactly(
        files: Path, fmt: str, numeric: str, caplog: pytest.LogCaptureFixture) -> None:
    spec = monitor(fmt, numeric, drift={"numericMethod": numeric,
                                        "categoricalMethod": "chisquare"})
    whole = check(spec, files, None)
    assert whole.phase in ("Healthy", "Drifting"), whole.condition("Ready")
    with caplog.at_level("INFO", logger="modelmon.streaming"):
        streamed = check(spec, files, LIMIT)
    assert "streaming it" in caplog.text  # the window really went the streamed way
    got = figures(streamed)
    assert 150_000 < got["rows"] < 240_000  # the rows outside the window are not scored
    assert {m for m, _, _ in got["drift"].values()} == {numeric, "chisquare"}
    assert_same(got, figures(whole))
    assert streamed.drift is not None
    summary = {f.name: f for f in streamed.drift.features}["income"]
    assert summary.current is not None  # read off the sketch's quantile grid


@pytest.mark.parametrize("categorical", ["psi", "jensenshannon", "hellinger", "tvd"])
def test_every_categorical_method_streams_exactly(files: Path, categorical: str) -> None:
    spec = monitor("parquet", drift={"numericMethod": "psi", "categoricalMethod": categorical})
    assert_same(figures(check(spec, files, LIMIT)), figures(check(spec, files, None)))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_exact_method_over_the_limit_is_refused_by_its_field(files: Path, fmt: str) -> None:
    status = check(monitor(fmt, "ks"), files, LIMIT)
    ready = status.condition("Ready")
    assert status.phase == "Failing" and ready is not None and ready.reason == "InvalidData"
    assert ready.message.startswith("spec.drift.numericMethod: ks, which reads every value, "
                                    "would hold column(s) 'income' of the current window in "
                                    "memory")
    assert "more than the check's memory limit of" in ready.message
    assert "--max-check-memory" in ready.message and "binned method" in ready.message
    own = monitor(fmt, "psi", drift={"numericMethod": "psi",
                                     "features": {"income": {"method": "wasserstein"}}})
    ready = check(own, files, LIMIT).condition("Ready")
    assert ready is not None and ready.message.startswith(
        "spec.drift.features.income.method: wasserstein, which reads every value,")


@pytest.mark.parametrize("command", ["check", "report"])
def test_the_cli_takes_the_limit_from_max_check_memory(
        files: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``modelmon check`` and ``report`` stream as the operator does when given the flag:
    the same refusal of ks over the limit, and without the flag the whole window is read."""
    from modelmon.cli import main

    doc = {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
           "metadata": {"name": "big"},
           "spec": monitor("parquet", "ks").model_dump(by_alias=True, exclude_none=True,
                                                       mode="json")}
    path = files / f"monitor-{command}.yaml"
    path.write_text(json.dumps(doc))
    at = ["--at", NOW.isoformat()]
    extra = ["-o", str(files / f"report-{command}.html")] if command == "report" else []
    code = main([command, str(path), *at, *extra, "--max-check-memory", "1Mi"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "spec.drift.numericMethod: ks, which reads every value" in out + err
    assert main([command, str(path), *at, *extra]) in (0, 1)
    capsys.readouterr()


def test_row_groups_larger_than_the_limit_are_refused(files: Path, tmp_path: Path) -> None:
    (tmp_path / "ref.parquet").write_bytes((files / "ref.parquet").read_bytes())
    pd.read_parquet(files / "cur.parquet").to_parquet(tmp_path / "cur.parquet", index=False,
                                                      row_group_size=240_000)
    ready = check(monitor("parquet"), tmp_path, LIMIT).condition("Ready")
    assert ready is not None and ready.reason == "InvalidData"
    assert ready.message.startswith("spec.current.source.url: a row group of the current "
                                    "window's files holds about"), ready.message
    assert "smaller row groups" in ready.message


def test_an_exact_method_whose_column_fits_is_scored_from_its_values(files: Path) -> None:
    spec = monitor("parquet", "ks")
    whole = figures(check(spec, files, None))
    # 200k rows of one column, twice: 3.2 MB; the window's columns together do not fit.
    assert_same(figures(check(spec, files, 4 * LIMIT)), whole)
    assert whole["drift"]["income"][0] == "ks"


def test_performance_columns_over_the_limit_are_refused_by_their_field(files: Path,
                                                                      tmp_path: Path) -> None:
    for name in ("ref.parquet", "cur.parquet"):
        frame = pd.read_parquet(files / name)
        frame["label"] = frame["age"] + 1.0
        frame["predicted"] = frame["age"]
        frame.to_parquet(tmp_path / name, index=False, row_group_size=30_000)
    spec = monitor("parquet", columns={"timestamp": "ts", "categorical": ["grade"],
                                       "target": "label", "prediction": "predicted"})
    ready = check(spec, tmp_path, 2 * LIMIT).condition("Ready")
    assert ready is not None and ready.reason == "InvalidData"
    assert ready.message.startswith("spec.performance.metrics: the performance metrics "
                                    "would hold column(s) 'label', 'predicted'"), ready.message
    fits = check(spec, tmp_path, 16 * LIMIT)  # the window streams, its labels fit
    whole = check(spec, tmp_path, None)
    assert fits.performance == whole.performance and fits.performance


def classifier(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, rows)
    score = 1 / (1 + np.exp(-(income - 50) / 10))
    return pd.DataFrame({"income": income, "region": rng.choice(["n", "s", "e"], rows),
                         "score": score, "approved": (score >= 0.5).astype(int),
                         "defaulted": (rng.random(rows) < score).astype(int),
                         "ts": pd.date_range(NOW - timedelta(hours=20), NOW, periods=rows)})


def test_a_streamed_classifier_window_keeps_its_metrics_confidence_and_estimates(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    classifier(20_000, 1).to_parquet(tmp_path / "ref.parquet", index=False)
    classifier(200_000, 2).to_parquet(tmp_path / "cur.parquet", index=False,
                                      row_group_size=20_000)
    spec = monitor("parquet", model={"name": "m", "task": "binaryClassification"},
                   columns={"timestamp": "ts", "prediction": "approved",
                            "predictionProbability": "score", "target": "defaulted"},
                   performance={"estimated": {"metrics": [{"name": "accuracy", "min": 0.5}]}})
    whole = check(spec, tmp_path, None)
    with caplog.at_level("INFO", logger="modelmon.streaming"):
        # The window's columns take about 20 MB; those of the metrics, the confidence and
        # the estimation together (five columns, held twice) 16 MB.
        streamed = check(spec, tmp_path, 16 * LIMIT)
    assert "streaming it" in caplog.text
    assert streamed.phase == whole.phase, streamed.condition("Ready")
    assert streamed.performance
    assert streamed.performance == whole.performance
    assert streamed.confidence == whole.confidence and streamed.confidence is not None
    assert streamed.estimated_performance == whole.estimated_performance
    assert_same(figures(streamed), figures(whole))


# ----------------------------------------------------------------- peak memory, measured

MEASURE = textwrap.dedent("""
    import dataclasses, json, sys
    from datetime import datetime
    from pathlib import Path
    from modelmon.api.policy import Policy
    from modelmon.api.v1alpha1 import ModelMonitorSpec
    from modelmon.check import run_check

    spec = ModelMonitorSpec.model_validate(json.loads(sys.argv[1]))
    limit = None if sys.argv[3] == "none" else int(sys.argv[3])
    status = run_check(spec, base_dir=Path(sys.argv[2]), now=datetime.fromisoformat(sys.argv[4]),
                       policy=dataclasses.replace(Policy.local(), max_memory=limit))
    with open("/proc/self/status") as proc:
        peak = next(int(line.split()[1]) for line in proc if line.startswith("VmHWM:"))
    ready = status.condition("Ready")
    print(json.dumps({"peak_kib": peak, "reason": ready.reason if ready else None,
                      "rows": status.last_check.current_rows if status.last_check else None}))
""")


def measured(spec: ModelMonitorSpec, base: Path, limit: int | None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, spec.model_dump_json(by_alias=True, exclude_none=True),
         str(base), "none" if limit is None else str(limit), NOW.isoformat()],
        capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_the_peak_memory_of_a_streamed_check_stays_bounded(tmp_path: Path) -> None:
    rows = 1_000_000
    rng = np.random.default_rng(5)
    window(20_000, seed=1).to_parquet(tmp_path / "ref.parquet", index=False)
    big = pd.DataFrame({
        "income": rng.normal(50, 10, rows), "age": rng.normal(40, 12, rows),
        "spend": rng.gamma(2.0, 30.0, rows), "grade": rng.integers(0, 5, rows).astype(float),
        "region": pd.Categorical(rng.choice(["n", "s", "e"], rows)),
        "ts": pd.date_range(NOW - timedelta(hours=20), NOW, periods=rows)})
    big.to_parquet(tmp_path / "cur.parquet", index=False, row_group_size=50_000)
    big.iloc[:20_000].to_parquet(tmp_path / "small.parquet", index=False)
    del big
    spec = monitor("parquet", columns={"timestamp": "ts", "categorical": ["grade"],
                                       "features": ["income", "age", "grade", "region"]})
    small = monitor("parquet", current={"source": {"url": "small.parquet"}, "window": "1d"},
                    columns={"timestamp": "ts", "categorical": ["grade"],
                             "features": ["income", "age", "grade", "region"]})
    baseline = measured(small, tmp_path, None)  # the interpreter, libraries and reference
    whole = measured(spec, tmp_path, None)
    streamed = measured(spec, tmp_path, 4 * LIMIT)
    assert whole["reason"] == streamed["reason"] == "CheckSucceeded"
    assert whole["rows"] == streamed["rows"] == rows - 1
    held_whole = whole["peak_kib"] - baseline["peak_kib"]
    held_streamed = streamed["peak_kib"] - baseline["peak_kib"]
    # The window's monitored columns take about 35 MiB loaded whole.
    assert held_whole > 25 * 1024, (baseline, whole)
    assert held_streamed < held_whole / 3, (baseline, whole, streamed)
