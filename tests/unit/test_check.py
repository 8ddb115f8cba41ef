"""The check end to end on files: drift, performance, data quality, findings, conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelmon.api.v1alpha1 import ModelMonitorSpec
from modelmon.check import DEFAULT_MIN_ROWS, InvalidSpecError, parse_spec, run_check

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def frames(n: int = 600, shift: float = 0.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift * 10, 10, n)
    age = rng.normal(40, 12, n)
    region = rng.choice(["n", "s", "e"], n, p=[0.5, 0.3, 0.2])
    score = 1 / (1 + np.exp(-(income - 50) / 10))
    target = (rng.random(n) < 1 / (1 + np.exp(-(rng.normal(50, 10, n) - 50) / 10))).astype(int)
    return pd.DataFrame({
        "id": np.arange(n), "income": income, "age": age, "region": region,
        "score": score, "approved": (score >= 0.5).astype(int), "defaulted": target,
        "ts": pd.date_range(NOW - timedelta(hours=2), periods=n, freq="10s"),
    })


def spec(tmp_path: Path, **over: Any) -> ModelMonitorSpec:
    doc: dict[str, Any] = {
        "model": {"name": "m", "task": "binaryClassification"},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "columns": {"prediction": "approved", "predictionProbability": "score",
                    "target": "defaulted", "timestamp": "ts", "exclude": ["id"]},
    }
    doc.update(over)
    return ModelMonitorSpec.model_validate(doc)


def write(tmp_path: Path, ref: pd.DataFrame, cur: pd.DataFrame) -> None:
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)


def test_no_drift_is_healthy(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW, generation=3)
    assert st.phase == "Healthy", st.findings
    assert st.observed_generation == 3
    assert st.drift is not None and not st.drift.dataset_drift
    assert [f.name for f in st.drift.features] == ["income", "age", "region"]
    assert {f.method for f in st.drift.features} == {"ks", "chisquare"}
    assert st.drift.prediction is not None and st.drift.prediction.name == "approved"
    assert st.drift.target is not None and st.drift.target.method == "ztest"
    assert set(st.performance) == {
        "accuracy", "precision", "recall", "f1", "rocAuc", "logLoss", "brier"}
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True" and ready.reason == "CheckSucceeded"
    assert st.last_check is not None and st.last_check.current_rows == 600


def test_shift_gives_drift_findings_and_phase(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(shift=1.0, seed=2))
    st = run_check(spec(tmp_path, drift={"datasetDriftShare": 0.3}), base_dir=tmp_path, now=NOW)
    assert st.drift is not None and st.drift.drifted == ["income"]
    assert st.drift.dataset_drift
    names = [f.name for f in st.findings]
    assert "drift.dataset" in names and "drift.prediction" in names
    assert st.phase == "Drifting"
    cond = st.condition("DataDrift")
    assert cond is not None and cond.status == "True" and cond.reason == "DriftDetected"


@pytest.mark.parametrize(("share", "dataset_drift"), [(1 / 3, True), (0.34, False)])
def test_dataset_drift_when_the_share_reaches_the_bound(tmp_path: Path, share: float,
                                                        dataset_drift: bool) -> None:
    # One of three features drifts: a share of exactly 1/3 reaches a bound of 1/3.
    write(tmp_path, frames(seed=1), frames(shift=1.0, seed=2))
    st = run_check(spec(tmp_path, drift={"datasetDriftShare": share}), base_dir=tmp_path,
                   now=NOW)
    assert st.drift is not None and st.drift.drifted == ["income"]
    assert st.drift.share == 1 / 3
    assert st.drift.dataset_drift is dataset_drift
    assert ("drift.dataset" in [f.name for f in st.findings]) is dataset_drift


def test_target_missing_from_the_window_skips_target_drift_and_performance(
        tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2).drop(columns=["defaulted"]))
    st = run_check(spec(tmp_path, performance={"metrics": [{"name": "accuracy", "min": 0.5}]}),
                   base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True", ready
    assert st.phase == "Healthy"
    assert st.data_quality is not None and st.data_quality.missing_columns == []
    assert not st.findings
    assert st.drift is not None and st.drift.target is None
    assert st.drift.prediction is not None
    assert not st.performance
    perf = st.condition("PerformanceDegraded")
    assert perf is not None and perf.status == "Unknown", perf
    assert perf.reason == "LabelsUnavailable" and "'defaulted'" in perf.message, perf
    assert [(n.bound, n.field) for n in st.not_checked] == [
        ("performance.accuracy", "spec.performance.metrics[0]")]
    assert "'defaulted'" in st.not_checked[0].reason


def test_one_class_window_judges_accuracy_and_lists_rocauc_as_not_checked(
        tmp_path: Path) -> None:
    cur = frames(seed=2)
    cur["defaulted"] = 1  # every label positive: rocAuc is undefined, accuracy is not
    write(tmp_path, frames(seed=1), cur)
    s = spec(tmp_path, performance={"metrics": [
        {"name": "rocAuc", "min": 0.7, "severity": "critical"},
        {"name": "accuracy", "min": 0.9}]})
    st = run_check(s, base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True", ready
    accuracy = float((cur["approved"] == 1).mean())
    assert st.performance == {"accuracy": pytest.approx(accuracy)} and accuracy < 0.9
    assert [f.name for f in st.findings if f.name.startswith("performance.")] == [
        "performance.accuracy"]
    (unchecked,) = st.not_checked
    assert (unchecked.bound, unchecked.field) == ("performance.rocAuc",
                                                  "spec.performance.metrics[0]")
    assert "only one class" in unchecked.reason
    cond = st.condition("PerformanceDegraded")
    assert cond is not None and cond.status == "True" and cond.reason == "OutOfBounds"
    assert "accuracy" in cond.message and "not checked: performance.rocAuc" in cond.message


def test_one_class_window_within_bounds_names_the_unchecked_metric(tmp_path: Path) -> None:
    cur = frames(seed=2)
    cur["defaulted"] = cur["approved"]  # every prediction right
    cur.loc[cur["defaulted"] == 0, ["defaulted", "approved"]] = 1  # and one class only
    write(tmp_path, frames(seed=1), cur)
    st = run_check(spec(tmp_path, performance={"metrics": [
        {"name": "accuracy", "min": 0.9}, {"name": "rocAuc", "min": 0.7}]}),
        base_dir=tmp_path, now=NOW)
    assert st.performance == {"accuracy": 1.0}
    cond = st.condition("PerformanceDegraded")
    assert cond is not None and cond.status == "False" and cond.reason == "WithinBounds"
    assert "performance.rocAuc" in cond.message and "only one class" in cond.message
    # Every bounded metric undefined: no verdict on performance, not "within bounds".
    alone = run_check(spec(tmp_path, performance={"metrics": [{"name": "rocAuc", "min": 0.7}]}),
                      base_dir=tmp_path, now=NOW)
    cond = alone.condition("PerformanceDegraded")
    assert cond is not None and cond.status == "Unknown" and cond.reason == "NotComputable"
    assert [n.bound for n in alone.not_checked] == ["performance.rocAuc"]


def test_one_class_window_without_listed_metrics_reports_the_defined_ones(
        tmp_path: Path) -> None:
    cur = frames(seed=2)
    cur["defaulted"] = 0
    write(tmp_path, frames(seed=1), cur)
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    assert "rocAuc" not in st.performance
    assert st.performance["accuracy"] == pytest.approx(float((cur["approved"] == 0).mean()))
    assert not st.not_checked  # nothing is bounded
    cond = st.condition("PerformanceDegraded")
    assert cond is not None and "not computed: rocAuc" in cond.message, cond


def test_all_labels_null_is_labels_unavailable_with_every_bound_listed(
        tmp_path: Path) -> None:
    cur = frames(seed=2)
    cur["defaulted"] = np.nan
    write(tmp_path, frames(seed=1), cur)
    st = run_check(spec(tmp_path, performance={"metrics": [
        {"name": "accuracy", "min": 0.5}, {"name": "rocAuc", "min": 0.5}]}),
        base_dir=tmp_path, now=NOW)
    assert not st.performance and not st.findings
    cond = st.condition("PerformanceDegraded")
    assert cond is not None and (cond.status, cond.reason) == ("Unknown", "LabelsUnavailable")
    assert "performance.accuracy and performance.rocAuc" in cond.message
    assert [(n.bound, n.field) for n in st.not_checked] == [
        ("performance.accuracy", "spec.performance.metrics[0]"),
        ("performance.rocAuc", "spec.performance.metrics[1]")]
    assert all("every label in column 'defaulted'" in n.reason for n in st.not_checked)
    assert st.labels is not None and st.labels.missing_since == NOW


def test_label_delay_is_a_finding_after_the_delay_and_resets_when_labels_return(
        tmp_path: Path) -> None:
    ref, cur = frames(seed=1), frames(seed=2)
    write(tmp_path, ref, cur.drop(columns=["defaulted"]))
    s = spec(tmp_path, current={"source": {"url": "cur.csv"}},
             performance={"metrics": [{"name": "accuracy", "min": 0.1}],
                          "maxLabelDelay": "1h", "labelDelaySeverity": "critical"})

    def at(minutes: int, previous: Any) -> Any:
        return run_check(s, base_dir=tmp_path, now=NOW + timedelta(minutes=minutes),
                         previous=previous)

    first = at(0, None)
    assert first.labels is not None and first.labels.missing_since == NOW
    assert not first.findings and first.phase == "Healthy"
    on_time = at(60, first)  # exactly the delay: not yet longer than it
    assert on_time.labels is not None and on_time.labels.missing_seconds == 3600
    assert on_time.labels.missing_since == NOW and not on_time.findings
    cond = on_time.condition("PerformanceDegraded")
    assert cond is not None and cond.reason == "LabelsUnavailable"
    late = at(70, on_time)
    (found,) = late.findings
    assert found.name == "performance.labelsMissing" and found.severity == "critical"
    assert found.value == 4200 and found.bound == 3600
    assert "spec.performance.maxLabelDelay 1h" in found.message
    assert late.phase == "Degraded"
    cond = late.condition("PerformanceDegraded")
    assert cond is not None and (cond.status, cond.reason) == ("True", "LabelsOverdue")
    assert [n.bound for n in late.not_checked] == ["performance.accuracy"]
    # A check without a verdict keeps since when labels are missing.
    (tmp_path / "cur.csv").write_text("not,a\nwindow")
    failed = at(80, late)
    ready = failed.condition("Ready")
    assert ready is not None and ready.status == "False" and failed.labels == late.labels
    # Labels return: no finding, the clock resets, and a later absence starts anew.
    write(tmp_path, ref, cur)
    back = at(90, failed)
    assert back.labels is not None and back.labels.missing_since is None
    assert back.labels.missing_seconds == 0 and not back.findings and not back.not_checked
    write(tmp_path, ref, cur.drop(columns=["defaulted"]))
    again = at(100, back)
    assert again.labels is not None
    assert again.labels.missing_since == NOW + timedelta(minutes=100)
    assert not again.findings


def test_auto_uses_distances_above_1000_rows(tmp_path: Path) -> None:
    write(tmp_path, frames(n=3000, seed=1), frames(n=3000, seed=2))
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    assert st.drift is not None
    assert {f.name: f.method for f in st.drift.features} == {
        "income": "wasserstein", "age": "wasserstein", "region": "jensenshannon"}
    assert all(f.p_value is None for f in st.drift.features)


def test_performance_bound_gives_degraded(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    s = spec(tmp_path, performance={"metrics": [
        {"name": "accuracy", "min": 0.99, "severity": "critical"}, {"name": "rocAuc", "min": 0}]})
    st = run_check(s, base_dir=tmp_path, now=NOW)
    assert st.phase == "Degraded"
    assert set(st.performance) == {"accuracy", "rocAuc"}
    (f,) = st.findings
    assert f.name == "performance.accuracy" and f.severity == "critical" and f.bound == 0.99
    cond = st.condition("PerformanceDegraded")
    assert cond is not None and cond.status == "True"


def test_data_quality_figures_and_findings(tmp_path: Path) -> None:
    ref, cur = frames(seed=1), frames(seed=2)
    cur.loc[:59, "age"] = np.nan          # 10 % missing
    cur.loc[60:89, "income"] = 1e6        # 5 % far out of range
    cur.loc[:2, "region"] = ["x", "y", "x"]
    write(tmp_path, ref, cur)
    s = spec(tmp_path, dataQuality={"missingFraction": {"max": 0.05},
                                    "outOfRangeFraction": {"max": 0.01},
                                    "newCategories": {"max": 0, "severity": "critical"}})
    st = run_check(s, base_dir=tmp_path, now=NOW)
    assert st.data_quality is not None
    q = {c.name: c for c in st.data_quality.columns}
    assert q["age"].missing_fraction == pytest.approx(0.1)
    assert q["income"].out_of_range_fraction == pytest.approx(0.05, abs=0.005)
    assert q["region"].new_categories == 2 and q["region"].outlier_fraction is None
    names = {f.name: f.severity for f in st.findings}
    assert names["dataQuality.missingFraction.age"] == "warning"
    assert names["dataQuality.outOfRangeFraction.income"] == "warning"
    assert names["dataQuality.newCategories.region"] == "critical"
    assert st.phase == "Degraded"


def test_missing_and_retyped_columns_fail_with_invalid_data_and_keep_data_quality(
        tmp_path: Path) -> None:
    ref, cur = frames(seed=1), frames(seed=2)
    write(tmp_path, ref, cur)
    healthy = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW, generation=2)
    assert healthy.phase == "Healthy"
    cur = cur.drop(columns=["age"])
    cur["income"] = "unknown"
    write(tmp_path, ref, cur)
    later = NOW + timedelta(minutes=10)
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=later, previous=healthy,
                   generation=2)
    assert st.phase == "Failing"
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "InvalidData"
    assert "spec.current.source" in ready.message
    assert "'age'" in ready.message and "'income'" in ready.message
    assert "numeric" in ready.message and "categorical" in ready.message
    assert ("restore 'age' and 'income' upstream, or list them in spec.columns.exclude"
            in ready.message), ready.message
    source = st.condition("SourceAvailable")
    assert source is not None and source.status == "True"
    # This check's data quality, and its findings, are in the status all the same.
    assert st.data_quality is not None
    assert st.data_quality.missing_columns == ["age"]
    assert [(t.name, t.reference, t.current) for t in st.data_quality.type_changes] == [
        ("income", "numeric", "categorical")]
    assert {c.name for c in st.data_quality.columns} == {"income", "region"}
    assert {f.name for f in st.findings} >= {"dataQuality.missingColumns.age",
                                             "dataQuality.typeChanges.income"}
    quality = st.condition("DataQualityDegraded")
    assert quality is not None and quality.status == "True" and "age" in quality.message
    # The figures that cannot be computed now are the last ones.
    assert st.drift == healthy.drift and st.performance == healthy.performance
    assert st.last_check == healthy.last_check


def test_one_missing_feature_of_an_explicit_list_names_that_field(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2).drop(columns=["region"]))
    st = run_check(spec(tmp_path, columns={
        "features": ["income", "region"], "prediction": "approved", "target": "defaulted",
        "timestamp": "ts"}), base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert st.phase == "Failing"
    assert ready is not None and ready.reason == "InvalidData"
    assert ("restore 'region' upstream, or remove it from spec.columns.features"
            in ready.message), ready.message
    assert st.data_quality is not None and st.data_quality.missing_columns == ["region"]


def test_prediction_column_missing_from_the_window_is_invalid_data(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2).drop(columns=["approved", "score"]))
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert st.phase == "Failing"
    assert ready is not None and ready.reason == "InvalidData"
    assert ("lacks 'approved' (spec.columns.prediction) and 'score' "
            "(spec.columns.predictionProbability)") in ready.message
    assert "restore 'approved' upstream, or correct spec.columns.prediction" in ready.message
    assert st.data_quality is not None
    assert st.data_quality.missing_columns == ["approved", "score"]
    assert {f.name for f in st.findings} >= {"dataQuality.missingColumns.approved",
                                             "dataQuality.missingColumns.score"}


def test_retyped_target_is_invalid_data(tmp_path: Path) -> None:
    cur = frames(seed=2)
    cur["defaulted"] = np.where(cur["defaulted"] == 1, "yes", "no")
    write(tmp_path, frames(seed=1), cur)
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert st.phase == "Failing"
    assert ready is not None and ready.reason == "InvalidData"
    assert "'defaulted' holds categorical values where the reference holds numeric" in (
        ready.message)
    assert "or correct spec.columns.target" in ready.message
    assert st.data_quality is not None
    assert [t.name for t in st.data_quality.type_changes] == ["defaulted"]


def test_window_filters_current_rows(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))  # rows every 10 s until 20 min ago
    st = run_check(spec(tmp_path, current={"source": {"url": "cur.csv"}, "window": "30m"}),
                   base_dir=tmp_path, now=NOW)
    assert st.last_check is not None and st.last_check.current_rows == 60


def test_min_rows_keeps_phase_and_reports(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(n=20, seed=2))
    st = run_check(spec(tmp_path, current={"source": {"url": "cur.csv"}, "minRows": 50}),
                   base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.reason == "InsufficientData" and "20 rows" in ready.message
    assert st.phase == "Pending"


def insufficient(st: Any) -> str:
    """The Ready message of a check that had too few rows (fails otherwise)."""
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "InsufficientData"
    return str(ready.message)


def test_header_only_window_is_no_verdict_without_min_rows(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2).iloc[:0])
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    message = insufficient(st)
    assert st.phase == "Pending"
    assert message.startswith("spec.current.source: the current window has 0 rows")
    assert f"fewer than the {DEFAULT_MIN_ROWS}" in message and "spec.current.minRows" in message
    assert st.findings == [] and st.last_check is None


def test_default_minimum_applies_just_below_and_not_at_it(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(n=DEFAULT_MIN_ROWS - 1, seed=2))
    assert "has 29 rows" in insufficient(run_check(spec(tmp_path), base_dir=tmp_path, now=NOW))
    write(tmp_path, frames(seed=1), frames(n=DEFAULT_MIN_ROWS, seed=2))
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True", ready


def test_empty_window_after_healthy_is_pending_not_healthy(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    healthy = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    assert healthy.phase == "Healthy"
    write(tmp_path, frames(seed=1), frames(seed=2).iloc[:0])
    after = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW + timedelta(minutes=10),
                      previous=healthy)
    insufficient(after)
    assert after.phase == "Pending"


def test_empty_window_keeps_a_problem_verdict(tmp_path: Path) -> None:
    s = spec(tmp_path, drift={"datasetDriftShare": 0.3})
    write(tmp_path, frames(seed=1), frames(shift=1.0, seed=2))
    drifting = run_check(s, base_dir=tmp_path, now=NOW)
    assert drifting.phase == "Drifting"
    write(tmp_path, frames(seed=1), frames(seed=2).iloc[:0])
    after = run_check(s, base_dir=tmp_path, now=NOW + timedelta(minutes=10), previous=drifting)
    insufficient(after)
    assert after.phase == "Drifting" and after.findings == drifting.findings


def test_min_rows_lowers_the_minimum(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(n=5, seed=2))
    st = run_check(spec(tmp_path, current={"source": {"url": "cur.csv"}, "minRows": 5}),
                   base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.status == "True" and st.phase != "Pending"
    assert st.last_check is not None and st.last_check.current_rows == 5


def test_min_rows_zero_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.current\.minRows: .*greater than or "
                       r"equal to 1"):
        parse_spec({"model": {"name": "m", "task": "binaryClassification"},
                    "reference": {"source": {"url": "ref.csv"}},
                    "current": {"source": {"url": "cur.csv"}, "minRows": 0}})


def test_tiny_reference_is_insufficient_naming_the_reference(tmp_path: Path) -> None:
    write(tmp_path, frames(n=10, seed=1), frames(seed=2))
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    message = insufficient(st)
    assert message.startswith("spec.reference.source: the reference has 10 rows")
    assert st.phase == "Pending"
    write(tmp_path, frames(seed=1).iloc[:0], frames(seed=2))
    assert "the reference has 0 rows" in insufficient(
        run_check(spec(tmp_path), base_dir=tmp_path, now=NOW))


def test_failure_keeps_previous_figures_and_transition_times(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    s = spec(tmp_path)
    first = run_check(s, base_dir=tmp_path, now=NOW)
    later = NOW + timedelta(minutes=10)
    second = run_check(s, base_dir=tmp_path, now=later, previous=first)
    for c in second.conditions:
        before = first.condition(c.type)
        assert before is not None and c.last_transition_time == before.last_transition_time
    (tmp_path / "cur.csv").unlink()
    failed = run_check(s, base_dir=tmp_path, now=later + timedelta(minutes=10), previous=second)
    assert failed.phase == "Failing"
    assert failed.drift == second.drift and failed.performance == second.performance
    ready = failed.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "SourceUnavailable"
    assert ready.last_transition_time == later + timedelta(minutes=10)
    assert "cur.csv not found" in ready.message
    drift = failed.condition("DataDrift")
    assert drift is not None and drift.last_transition_time == NOW


@pytest.mark.parametrize(("over", "reason", "text"), [
    ({"columns": {"features": ["nope"]}}, "InvalidSpec", "spec.columns.features: 'nope'"),
    ({"columns": {"categorical": ["regoin"]}}, "InvalidSpec", "spec.columns.categorical"),
    ({"drift": {"features": {"ghost": {"method": "ks"}}}}, "InvalidSpec", "spec.drift.features"),
    ({"drift": {"features": {"region": {"method": "ks"}}}}, "InvalidSpec",
     "spec.drift.features.region.method: column 'region' is categorical"),
    ({"columns": {"prediction": "nope"}}, "InvalidData", "spec.columns.prediction"),
])
def test_semantic_errors_name_the_field(tmp_path: Path, over: dict[str, Any], reason: str,
                                        text: str) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    st = run_check(spec(tmp_path, **over), base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert st.phase == "Failing"
    assert ready is not None and ready.reason == reason and text in ready.message, ready


def test_unreadable_file_is_invalid_data(tmp_path: Path) -> None:
    write(tmp_path, frames(seed=1), frames(seed=2))
    (tmp_path / "cur.parquet").write_bytes(b"not parquet at all")
    st = run_check(spec(tmp_path, current={"source": {"url": "cur.parquet"}}),
                   base_dir=tmp_path, now=NOW)
    ready = st.condition("Ready")
    assert ready is not None and ready.reason == "InvalidData"
    assert "spec.current.source.url" in ready.message and "parquet" in ready.message


def test_auto_two_category_column_with_a_new_category_uses_chisquare(tmp_path: Path) -> None:
    ref, cur = frames(seed=1), frames(seed=2)
    ref["flag"] = np.where(np.arange(len(ref)) % 2 == 0, "a", "b")
    cur["flag"] = np.where(np.arange(len(cur)) % 3 == 0, "c", "a")
    write(tmp_path, ref, cur)
    st = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    assert st.drift is not None
    flag = next(f for f in st.drift.features if f.name == "flag")
    assert flag.method == "chisquare" and flag.drifted


def test_reference_is_read_once_across_checks_and_again_after_it_changes(
        tmp_path: Path) -> None:
    from modelmon.check import FittedReference
    from modelmon.sources import ReferenceCache

    write(tmp_path, frames(seed=1), frames(seed=2))
    cache: ReferenceCache[FittedReference] = ReferenceCache()
    s = spec(tmp_path)
    for i in range(5):
        st = run_check(s, base_dir=tmp_path, now=NOW + timedelta(minutes=i), cache=cache,
                       cache_key="m")
        assert st.phase == "Healthy"
    assert (cache.loads, cache.builds, cache.hits) == (1, 1, 4)
    frames(n=700, seed=3).to_csv(tmp_path / "ref.csv", index=False)
    st = run_check(s, base_dir=tmp_path, now=NOW + timedelta(minutes=9), cache=cache,
                   cache_key="m")
    assert st.last_check is not None and st.last_check.reference_rows == 700
    assert (cache.loads, cache.builds) == (2, 2)
    # A spec change that alters the plan rebuilds the profile from the same data.
    changed = spec(tmp_path, drift={"method": "psi"})
    st = run_check(changed, base_dir=tmp_path, now=NOW + timedelta(minutes=10), cache=cache,
                   cache_key="m")
    assert st.drift is not None and {f.method for f in st.drift.features} == {"psi"}


def test_a_check_alone_scores_in_threads_and_one_under_a_cpu_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``modelmon check`` (no CPU limit) fits and scores a large window in threads; the
    operator's checks, which share its CPU semaphore, use one thread each; the figures
    are the same."""
    import threading

    from modelmon import check
    from modelmon.stats import dataset

    seen: list[tuple[str, int]] = []
    fit, score = dataset.fit_reference, dataset.score_window

    def fit_spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(("fit", kwargs.get("workers", 1)))
        return fit(*args, **kwargs)

    def score_spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(("score", kwargs.get("workers", 1)))
        return score(*args, **kwargs)

    monkeypatch.setattr(check, "fit_reference", fit_spy)
    monkeypatch.setattr(check, "score_window", score_spy)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    write(tmp_path, frames(n=60_000, seed=1), frames(n=60_000, shift=0.5, seed=2))
    alone = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW)
    assert seen == [("fit", 4), ("score", 4)]
    seen.clear()
    limited = run_check(spec(tmp_path), base_dir=tmp_path, now=NOW,
                        cpu=threading.BoundedSemaphore(2))
    assert seen == [("fit", 1), ("score", 1)]
    assert alone.drift == limited.drift and alone.data_quality == limited.data_quality


def test_small_windows_score_in_one_thread() -> None:
    from modelmon.stats.dataset import alone_workers

    assert alone_workers(1000, 20) == 1
    assert 1 <= alone_workers(100_000, 20) <= 4
    assert alone_workers(1_000_000, 1) == 1
