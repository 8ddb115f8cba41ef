"""Estimated performance end to end: the spec's validation, `modelmon check` on a binary
classifier, a multiclass one and a regression (status with bands, the table beside realized
metrics, findings only when the whole band is past a bound), bad input that leaves drift
judged, the estimator fitted once per reference, the exported series and the rule's alerts
under promtool."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from classifier_data import CLASSES
from classifier_data import three_class_window as multiclass
from modelmon import check as check_module
from modelmon.api.errors import field_errors
from modelmon.api.v1alpha1 import (
    ESTIMATED_METRICS,
    Finding,
    ModelMonitorSpec,
    ModelMonitorStatus,
    RetrainingSpec,
)
from modelmon.check import FittedReference, run_check
from modelmon.cli import main
from modelmon.evaluation import table
from modelmon.outputs.metrics import Metrics
from modelmon.outputs.notifiers.base import Message
from modelmon.outputs.notifiers.senders import alert_identity
from modelmon.outputs.retraining import condition_holds
from modelmon.outputs.rules import prometheus_rule
from modelmon.sources import ReferenceCache
from modelmon.stats.estimation import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    fit_classifier_estimator,
)
from promtool_rules import VALUE, alerts_fire_as_expected, checked_rules, expected_alert


def binary(n: int, seed: int, spread: float = 1.0) -> pd.DataFrame:
    """A calibrated binary model: its score is the true chance of the positive class, so
    a window whose inputs crowd near the boundary (small ``spread``) is harder."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, spread, n)
    p = 1.0 / (1.0 + np.exp(-2.5 * x))
    return pd.DataFrame({"x": x, "z": rng.normal(0.0, 1.0, n), "score": p,
                         "pred": (p >= 0.5).astype(int),
                         "label": (rng.random(n) < p).astype(int)})


def regression(n: int, seed: int, spread: float = 1.0) -> pd.DataFrame:
    """A regression whose error grows with |x|: a window of wider x is worse."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, spread, n)
    prediction = 3.0 * x + 1.0
    return pd.DataFrame({"x": x, "z": rng.normal(0.0, 1.0, n), "price": prediction,
                         "actual": prediction + rng.normal(0.0, 0.2 + np.abs(x), n)})


SPECS: dict[str, dict[str, Any]] = {
    "binaryClassification": {"columns": {"prediction": "pred", "predictionProbability": "score",
                                         "target": "label"}},
    "multiclassClassification": {"columns": {
        "prediction": "species", "target": "label",
        "classProbabilities": {c: f"p_{c}" for c in CLASSES}}},
    "regression": {"columns": {"prediction": "price", "target": "actual"}},
}


def monitor(task: str, estimated: list[dict[str, Any]] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "m", "task": task},
        "reference": {"source": {"url": "ref.csv"}},
        "current": {"source": {"url": "cur.csv"}},
        "columns": dict(SPECS[task]["columns"]),
    }
    if estimated is not None:
        spec["performance"] = {"estimated": {"metrics": estimated}}
    return {"apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
            "metadata": {"name": "m", "namespace": "ml"}, "spec": spec}


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, ref: pd.DataFrame,
        cur: pd.DataFrame, estimated: list[dict[str, Any]] | None, *args: str
        ) -> tuple[int, str]:
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(monitor(task, estimated)))
    code = main(["check", str(path), *args])
    return code, capsys.readouterr().out


def run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str,
             ref: pd.DataFrame, cur: pd.DataFrame,
             estimated: list[dict[str, Any]] | None) -> dict[str, Any]:
    _, out = run(tmp_path, capsys, task, ref, cur, estimated, "-o", "json")
    status: dict[str, Any] = json.loads(out)
    return status


# ------------------------------------------------------------------------------- spec


def _errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        ModelMonitorSpec.model_validate(doc)
    return field_errors(info.value, prefix="spec")


def test_the_api_lists_the_metrics_the_estimators_give() -> None:
    assert ESTIMATED_METRICS == {"binaryClassification": BINARY_METRICS,
                                 "multiclassClassification": MULTICLASS_METRICS,
                                 "regression": REGRESSION_METRICS}


@pytest.mark.parametrize(("task", "name"), [
    ("binaryClassification", "mae"), ("binaryClassification", "logLoss"),
    ("binaryClassification", "f1Macro"), ("multiclassClassification", "precision"),
    ("regression", "r2"), ("regression", "accuracy")])
def test_a_metric_the_task_cannot_estimate_is_refused_naming_the_field(task: str,
                                                                       name: str) -> None:
    (line,) = _errors(monitor(task, [{"name": name, "min": 0.5}])["spec"])
    assert line.startswith("spec.performance.estimated.metrics:") and name in line
    assert "cannot be estimated" in line


@pytest.mark.parametrize(("task", "drop", "needed"), [
    ("binaryClassification", "predictionProbability", "columns.predictionProbability"),
    ("multiclassClassification", "classProbabilities", "columns.classProbabilities"),
    ("regression", "prediction", "columns.prediction"),
    ("binaryClassification", "target", "columns.target"),
    ("regression", "target", "columns.target")])
def test_estimation_needs_its_columns(task: str, drop: str, needed: str) -> None:
    doc = monitor(task, [{"name": ESTIMATED_METRICS[task][0], "min": 0.1}])["spec"]
    del doc["columns"][drop]
    lines = _errors(doc)
    assert any(line.startswith("spec.performance.estimated.metrics:") and needed in line
               for line in lines), lines


def test_a_binary_classifier_with_class_columns_is_told_to_name_its_positive_class() -> None:
    doc = monitor("binaryClassification", [{"name": "f1", "min": 0.5}])["spec"]
    del doc["columns"]["predictionProbability"]
    doc["columns"]["classProbabilities"] = {"0": "p0", "1": "p1"}
    (line,) = _errors(doc)
    assert line.startswith("spec.performance.estimated.metrics:")
    assert "columns.predictionProbability" in line


@pytest.mark.parametrize("task", list(SPECS))
def test_every_metric_of_the_task_is_a_valid_bound(task: str) -> None:
    spec = ModelMonitorSpec.model_validate(monitor(task, [
        {"name": n, "min": 0.0, "severity": "critical"} for n in ESTIMATED_METRICS[task]
    ])["spec"])
    assert [m.name for m in spec.performance.estimated.metrics] == list(
        ESTIMATED_METRICS[task])
    # Nothing estimated is the default, and adds no row to the bounds table.
    plain = ModelMonitorSpec.model_validate(monitor(task, None)["spec"])
    assert not [r for r in table(plain) if r.family == "estimatedPerformance"]


def test_each_metric_may_be_listed_once_and_needs_a_bound() -> None:
    (line,) = _errors(monitor("regression", [{"name": "mae", "max": 1},
                                             {"name": "mae", "max": 2}])["spec"])
    assert line.startswith("spec.performance.estimated.metrics:") and "once" in line
    (line,) = _errors(monitor("regression", [{"name": "mae"}])["spec"])
    assert line.startswith("spec.performance.estimated.metrics[0]:")


# ------------------------------------------------------------------------------ check


def _band(status: dict[str, Any], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    estimated: dict[str, dict[str, float]] = status["estimatedPerformance"]
    assert set(estimated) == set(names)
    for figure in estimated.values():
        assert figure["lower"] <= figure["value"] <= figure["upper"]
        assert figure["lower"] < figure["upper"]
    return estimated


def test_binary_estimates_follow_a_harmful_input_shift_without_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = binary(3000, 1)
    asked = [{"name": "rocAuc", "min": 0.5}, {"name": "accuracy", "min": 0.1}]
    same = run_json(tmp_path, capsys, "binaryClassification", ref,
                    binary(1000, 2).drop(columns="label"), asked)
    hard = run_json(tmp_path, capsys, "binaryClassification", ref,
                    binary(1000, 2, spread=0.3).drop(columns="label"), asked)
    # Only the metrics the spec lists are estimated.
    like, shifted = (_band(s, ("rocAuc", "accuracy")) for s in (same, hard))
    # The inputs crowd near the boundary: the model is right less often, and the estimate
    # says so with no label in the window.
    assert shifted["rocAuc"]["upper"] < like["rocAuc"]["lower"]
    assert shifted["accuracy"]["upper"] < like["accuracy"]["lower"]
    assert hard["estimationReason"] is None and hard["performance"] == {}
    assert hard["labels"]["reason"].endswith("(spec.columns.target)")


def test_a_bound_is_breached_only_when_the_whole_band_is_past_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, cur = binary(3000, 1), binary(1000, 2, spread=0.3).drop(columns="label")
    first = run_json(tmp_path, capsys, "binaryClassification", ref, cur,
                     [{"name": "rocAuc", "min": 0.01}])
    auc = first["estimatedPerformance"]["rocAuc"]
    assert not first["findings"] or all(not f["name"].startswith("estimatedPerformance.")
                                        for f in first["findings"])
    # Below the bound, but the band reaches it: chance explains it, no finding.
    reached = (auc["value"] + auc["upper"]) / 2
    status = run_json(tmp_path, capsys, "binaryClassification", ref, cur,
                      [{"name": "rocAuc", "min": reached, "severity": "critical"}])
    assert status["estimatedPerformance"]["rocAuc"] == auc
    assert auc["value"] < reached
    assert not [f for f in status["findings"] if f["name"].startswith("estimatedPerformance")]
    (cond,) = [c for c in status["conditions"] if c["type"] == "EstimatedPerformanceDegraded"]
    assert cond["status"] == "False" and cond["reason"] == "WithinBounds"
    # The whole band below the bound: a finding that states estimate, band and bound.
    past = auc["upper"] + 0.01
    code, out = run(tmp_path, capsys, "binaryClassification", ref, cur,
                    [{"name": "rocAuc", "min": past, "severity": "critical"}], "-o", "json")
    status = json.loads(out)
    (found,) = [f for f in status["findings"] if f["name"] == "estimatedPerformance.rocAuc"]
    assert found["severity"] == "critical" and found["bound"] == pytest.approx(past)
    assert found["value"] == pytest.approx(auc["value"])
    assert found["message"] == (
        f"estimated rocAuc {auc['value']:.4g} (band {auc['lower']:.4g}-{auc['upper']:.4g} "
        f"from sampling) is below {past:.4g}")
    (cond,) = [c for c in status["conditions"] if c["type"] == "EstimatedPerformanceDegraded"]
    assert cond["status"] == "True" and cond["reason"] == "OutOfBounds"
    assert code == 1 and status["phase"] == "Degraded"
    # A max: a finding only when the band's lower end is above it.
    status = run_json(tmp_path, capsys, "binaryClassification", ref, cur,
                      [{"name": "rocAuc", "max": (auc["value"] + auc["lower"]) / 2}])
    assert not [f for f in status["findings"] if f["name"].startswith("estimatedPerformance")]
    status = run_json(tmp_path, capsys, "binaryClassification", ref, cur,
                      [{"name": "rocAuc", "max": auc["lower"] - 0.01}])
    (found,) = [f for f in status["findings"] if f["name"] == "estimatedPerformance.rocAuc"]
    assert " is above " in found["message"]


def test_with_labels_the_table_shows_realized_and_estimated_side_by_side(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, cur = binary(3000, 1), binary(1000, 2, spread=0.3)
    _, out = run(tmp_path, capsys, "binaryClassification", ref, cur,
                 [{"name": "accuracy", "min": 0.5}])
    assert "estimated performance (without labels;" in out and "beside the realized" in out
    header = next(line for line in out.splitlines() if line.startswith("metric "))
    assert header.split() == ["metric", "estimated", "lower", "upper", "realized"]
    accuracy = next(line.split() for line in out.splitlines()
                    if line.startswith("accuracy "))
    realized = float((cur["pred"] == cur["label"]).mean())
    assert float(accuracy[4]) == pytest.approx(realized, abs=1e-4)
    # The estimate follows the realized accuracy within its band.
    assert float(accuracy[2]) <= realized <= float(accuracy[3])
    # Realized-only metrics keep their rows, without estimates.
    assert next(line.split() for line in out.splitlines()
                if line.startswith("logLoss "))[1:4] == ["-", "-", "-"]
    # Without labels: the estimates alone.
    _, out = run(tmp_path, capsys, "binaryClassification", ref, cur.drop(columns="label"),
                 [{"name": "accuracy", "min": 0.5}])
    assert "beside the realized" not in out
    header = next(line for line in out.splitlines() if line.startswith("metric "))
    assert header.split() == ["metric", "estimated", "lower", "upper"]


def test_regression_estimates_mae_and_rmse_with_bands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = regression(2000, 1)
    calm = run_json(tmp_path, capsys, "regression", ref,
                    regression(800, 2).drop(columns="actual"),
                    [{"name": "mae", "max": 50}, {"name": "rmse", "max": 50}])
    wide = run_json(tmp_path, capsys, "regression", ref,
                    regression(800, 2, spread=1.6).drop(columns="actual"),
                    [{"name": "mae", "max": 50}, {"name": "rmse", "max": 50}])
    like, shifted = (_band(s, REGRESSION_METRICS) for s in (calm, wide))
    assert shifted["mae"]["lower"] > like["mae"]["upper"]
    assert shifted["rmse"]["value"] > like["rmse"]["value"]
    # A max the whole band is above: the finding says so; one the band reaches: none.
    mae = shifted["mae"]
    status = run_json(tmp_path, capsys, "regression", ref,
                      regression(800, 2, spread=1.6).drop(columns="actual"),
                      [{"name": "mae", "max": mae["lower"] - 0.05},
                       {"name": "rmse", "max": shifted["rmse"]["value"] - 1e-3}])
    found = {f["name"]: f for f in status["findings"]}
    assert "estimatedPerformance.rmse" not in found
    assert found["estimatedPerformance.mae"]["message"].startswith(
        f"estimated mae {mae['value']:.4g} (band ")
    assert " is above " in found["estimatedPerformance.mae"]["message"]
    # The drift of the inputs is judged beside it.
    assert any(f["name"] == "x" and f["drifted"] for f in status["drift"]["features"])


def test_multiclass_estimates_the_macro_and_weighted_metrics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = multiclass(1500, 1, 4.0)
    every = [{"name": name, "min": 0.01} for name in MULTICLASS_METRICS]
    sure = run_json(tmp_path, capsys, "multiclassClassification", ref,
                    multiclass(600, 2, 4.0).drop(columns="label"), every)
    unsure = run_json(tmp_path, capsys, "multiclassClassification", ref,
                      multiclass(600, 2, 0.7).drop(columns="label"), every)
    like, worse = (_band(s, MULTICLASS_METRICS) for s in (sure, unsure))
    assert worse["accuracy"]["upper"] < like["accuracy"]["lower"]


# --------------------------------------------------------------------------- bad input


def test_a_reference_without_labels_is_a_reason_and_drift_is_still_judged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = binary(3000, 1)
    ref["label"] = np.nan
    cur = binary(1000, 2, spread=0.3).drop(columns="label")
    bounds = [{"name": "rocAuc", "min": 0.8}, {"name": "f1", "min": 0.6}]
    code, out = run(tmp_path, capsys, "binaryClassification", ref, cur, bounds, "-o", "json")
    status = json.loads(out)
    reason = status["estimationReason"]
    assert reason.startswith("spec.columns.target: ") and "reference" in reason
    assert status["estimatedPerformance"] == {}
    unchecked = {n["bound"]: n for n in status["notChecked"]}
    assert set(unchecked) == {"estimatedPerformance.rocAuc", "estimatedPerformance.f1"}
    assert unchecked["estimatedPerformance.f1"]["field"] == (
        "spec.performance.estimated.metrics[1]")
    assert {n["reason"] for n in unchecked.values()} == {reason}
    (cond,) = [c for c in status["conditions"] if c["type"] == "EstimatedPerformanceDegraded"]
    assert cond["status"] == "Unknown" and cond["reason"] == "NotComputable"
    # Drift, data quality and confidence are judged as usual.
    assert status["phase"] == "Drifting" and status["drift"]["datasetDrift"]
    assert status["dataQuality"]["columns"] and status["confidence"]["reason"] is None
    assert code == 0
    _, text = run(tmp_path, capsys, "binaryClassification", ref, cur, bounds)
    assert f"estimated performance: not computed: {reason}" in text
    # A reference without the label column at all says the same field.
    status = run_json(tmp_path, capsys, "binaryClassification", ref.drop(columns="label"),
                      cur, bounds)
    assert status["estimationReason"].startswith("spec.columns.target: the reference has no "
                                                 "label column 'label'")


@pytest.mark.parametrize(("value", "said"), [(1.5, "outside [0, 1]"),
                                             (np.nan, "missing or infinite")])
def test_bad_window_probabilities_are_a_reason_naming_the_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float, said: str) -> None:
    cur = binary(1000, 2).drop(columns="label")
    cur.loc[3, "score"] = value
    status = run_json(tmp_path, capsys, "binaryClassification", binary(3000, 1), cur,
                      [{"name": "rocAuc", "min": 0.8}])
    assert status["estimationReason"].startswith("spec.columns.predictionProbability: ")
    assert said in status["estimationReason"]
    assert status["phase"] != "Failing" and status["drift"]["features"]


def test_multiclass_reasons_name_the_class_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cur = multiclass(600, 2, 4.0).drop(columns="label")
    cur.loc[0, "p_setosa"] = -0.2
    status = run_json(tmp_path, capsys, "multiclassClassification",
                      multiclass(1500, 1, 4.0), cur, [{"name": "accuracy", "min": 0.5}])
    assert status["estimationReason"].startswith("spec.columns.classProbabilities: ")
    one_class = multiclass(1500, 1, 4.0).assign(label="setosa")
    status = run_json(tmp_path, capsys, "multiclassClassification", one_class,
                      multiclass(600, 2, 4.0), [{"name": "accuracy", "min": 0.5}])
    assert status["estimationReason"].startswith("spec.columns.target: ")
    assert "one class" in status["estimationReason"]


def test_too_few_labelled_reference_rows_is_a_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = regression(2000, 1)
    ref.loc[60:, "actual"] = np.nan
    status = run_json(tmp_path, capsys, "regression", ref, regression(500, 2),
                      [{"name": "mae", "max": 5}])
    assert status["estimationReason"].startswith(
        "spec.performance.estimated: reference: has 60 labelled rows")
    assert status["phase"] != "Failing" and "mae" in status["performance"]


# --------------------------------------------------------------------------- caching


def test_the_estimator_is_fitted_once_per_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[int] = []
    real = fit_classifier_estimator

    def counted(*args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(check_module, "fit_classifier_estimator", counted)  # as check calls it
    binary(3000, 1).to_csv(tmp_path / "ref.csv", index=False)
    binary(1000, 2).drop(columns="label").to_csv(tmp_path / "cur.csv", index=False)
    spec = ModelMonitorSpec.model_validate(
        monitor("binaryClassification", [{"name": "f1", "min": 0.5}])["spec"])
    cache: ReferenceCache[FittedReference] = ReferenceCache()
    now = datetime(2026, 12, 5, tzinfo=UTC)
    seen = [run_check(spec, base_dir=tmp_path, now=now + timedelta(minutes=i), cache=cache,
                      cache_key="m").estimated_performance for i in range(3)]
    assert len(fits) == 1 and seen[0] == seen[1] == seen[2] and seen[0]
    binary(2000, 5).to_csv(tmp_path / "ref.csv", index=False)  # the reference changes
    after = run_check(spec, base_dir=tmp_path, now=now + timedelta(minutes=5), cache=cache,
                      cache_key="m").estimated_performance
    assert len(fits) == 2 and after != seen[0]
    # Without estimated bounds nothing is fitted.
    plain = ModelMonitorSpec.model_validate(monitor("binaryClassification", None)["spec"])
    status = run_check(plain, base_dir=tmp_path, now=now, cache=cache, cache_key="p")
    assert len(fits) == 2 and status.estimated_performance == {}


# ------------------------------------------------------------------ series and rule


def test_series_carry_the_estimate_and_its_band(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status = ModelMonitorStatus.model_validate(run_json(
        tmp_path, capsys, "binaryClassification", binary(3000, 1),
        binary(1000, 2).drop(columns="label"), [{"name": "rocAuc", "min": 0.8}]))
    metrics = Metrics()
    metrics.observe("ml", "m", model="m", status=status, seconds=0.1, last_success=1.0,
                    error=None)
    families = {f.name: f for f in metrics.registry.collect()}
    samples = {(s.labels["metric"], s.labels["bound"]): s.value
               for s in families["modelmon_estimated_performance_metric"].samples}
    assert samples == {(m, end): getattr(status.estimated_performance[m], end)
                       for m in ("rocAuc",) for end in ("value", "lower", "upper")}
    # A metric name that is no estimator's (a status edited in the cluster) is not exported.
    odd = status.model_copy(update={"estimated_performance": {
        "evil\nname": status.estimated_performance["rocAuc"]}})
    metrics.observe("ml", "m", model="m", status=odd, seconds=0.1, last_success=1.0,
                    error=None)
    families = {f.name: f for f in metrics.registry.collect()}
    assert not families["modelmon_estimated_performance_metric"].samples


BOUNDS = [{"name": "rocAuc", "min": 0.8, "severity": "critical"},
          {"name": "f1", "min": 0.5, "max": 0.95}]


def _rule() -> dict[str, Any]:
    spec = monitor("binaryClassification", BOUNDS)["spec"]
    spec["alerting"] = {"prometheusRule": {"for": "2m"}}
    return prometheus_rule("ml", "m", ModelMonitorSpec.model_validate(spec))


def test_each_bound_is_one_alert_comparing_the_band_end() -> None:
    rules = [r for r in _rule()["spec"]["groups"][0]["rules"]
             if r["alert"] == "ModelEstimatedPerformanceDegraded"]
    by_metric = {r["labels"]["metric"]: r for r in rules}
    assert set(by_metric) == {"rocAuc", "f1"} and len(rules) == 2
    auc, f1 = by_metric["rocAuc"], by_metric["f1"]
    assert auc["labels"]["severity"] == "critical" and f1["labels"]["severity"] == "warning"
    assert 'metric="rocAuc",bound="upper"' in auc["expr"] and auc["expr"].endswith("< 0.8")
    assert 'bound="lower"' not in auc["expr"]
    assert 'bound="upper"}) < 0.5 or ' in f1["expr"] and f1["expr"].endswith("> 0.95")
    assert 'metric="f1",bound="lower"' in f1["expr"]


def test_promtool_fires_only_when_the_band_is_past_the_bound(tmp_path: Path) -> None:
    obj = _rule()
    rules = checked_rules(tmp_path, obj)
    base = 'namespace="ml",monitor="m",model="m"'
    # rocAuc (min 0.8): the estimate is below 0.8 throughout; the band reaches the bound for
    # the first 10 minutes (upper 0.85), then lies wholly below it (upper 0.75) for 10.
    series = [
        (f'modelmon_estimated_performance_metric{{{base},metric="rocAuc",bound="value"}}',
         "0.7x20"),
        (f'modelmon_estimated_performance_metric{{{base},metric="rocAuc",bound="lower"}}',
         "0.6x20"),
        (f'modelmon_estimated_performance_metric{{{base},metric="rocAuc",bound="upper"}}',
         "0.85x10 0.75x10"),
    ]
    (rule,) = [r for r in obj["spec"]["groups"][0]["rules"]
               if r["alert"] == "ModelEstimatedPerformanceDegraded"
               and r["labels"]["metric"] == "rocAuc"]
    firing = [expected_alert(rule, {"namespace": "ml", "monitor": "m", "bound": "upper"},
                             {VALUE: "0.75", "{{ $labels.bound }}": "upper"})]
    alerts_fire_as_expected(rules, series, "ModelEstimatedPerformanceDegraded",
                            {"5m": [], "12m": [], "18m": firing})


def test_estimated_findings_are_pushed_as_their_rule_alerts() -> None:
    """The Alertmanager notifier names an estimated finding as the rule does: alertname,
    metric and the band's end the rule's ``by (...)`` keeps."""
    spec = ModelMonitorSpec.model_validate(monitor("binaryClassification", BOUNDS)["spec"])
    rules = prometheus_rule("ml", "m", spec)["spec"]["groups"][0]["rules"]
    message = Message("ml", "m", "m", None, "Degraded", datetime(2026, 12, 5, tzinfo=UTC),
                      [], [], "key")
    for row in (r for r in table(spec) if r.family == "estimatedPerformance"):
        for limit in row.limits:
            end = dict(limit.labels)["bound"]
            value = limit.value - 0.1 if limit.comparison == "<" else limit.value + 0.01
            finding = Finding(name=row.name, severity=row.severity, value=value,
                              bound=limit.value, message="m")
            name, labels = alert_identity(finding, message)
            assert labels == {"metric": row.subject, "bound": end}
            (rule,) = [r for r in rules if r["alert"] == name
                       and r["labels"].get("metric") == labels["metric"]]
            assert "by (namespace, monitor, metric, bound)" in rule["expr"]
            assert f'bound="{end}"}}) {limit.comparison} ' in rule["expr"]


def test_an_estimate_never_starts_retraining() -> None:
    """Retraining acts on realized performance and drift; an estimate that concept shift
    can fool does not start a Job by itself."""
    when = RetrainingSpec.model_validate({"when": {"drift": False, "performance": True},
                                          "jobTemplate": {"spec": {"template": {}}}})
    estimate = Finding(name="estimatedPerformance.rocAuc", severity="critical", value=0.6,
                       bound=0.8, message="m")
    realized = estimate.model_copy(update={"name": "performance.rocAuc"})
    assert not condition_holds(when, [estimate]) and condition_holds(when, [realized])
