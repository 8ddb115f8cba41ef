"""The generated PrometheusRule: golden file, promtool check, and promtool unit tests that
show every alert firing on synthetic series and resolving when they recover."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmon.api.v1alpha1 import ModelMonitor, ModelMonitorSpec
from modelmon.cli import main
from modelmon.outputs.rules import prometheus_rule
from promtool_rules import expected_alert
from toolcheck import require

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "breast-cancer" / "monitor.yaml"
GOLDEN = ROOT / "tests" / "golden" / "breast-cancer.prometheusrule.yaml"
NS, MON, MODEL = "ml", "credit", "credit-risk"


def spec() -> ModelMonitorSpec:
    return ModelMonitorSpec.model_validate({
        "model": {"name": MODEL, "task": "binaryClassification"},
        "schedule": {"interval": "1m"},
        "reference": {"source": {"url": "r.csv"}},
        "current": {"source": {"url": "c.csv"}},
        "columns": {"target": "y", "prediction": "p"},
        "drift": {"datasetDriftShare": 0.5, "severity": "critical",
                  "features": {"income": {"severity": "warning"}, "age": {"method": "ks"}}},
        "performance": {"metrics": [{"name": "accuracy", "min": 0.8, "max": 0.99}],
                        "maxLabelDelay": "5m"},
        "dataQuality": {"missingFraction": {"max": 0.05}},
        "operational": {"source": {"prometheus": {
            "url": "http://prometheus.example:9090",
            "queries": [{"name": "latencyP95Seconds", "query": "vector(0.1)", "max": 0.5,
                         "severity": "critical"}]}}},
        "alerting": {"labels": {"team": "risk"},
                     "prometheusRule": {"for": "2m", "runbookUrl": "https://runbooks.example/m",
                                        "labels": {"release": "kps"}}},
    })


def test_golden_rule_of_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out == GOLDEN.read_text(), "regenerate with: modelmon rules " + str(EXAMPLE)
    mon = ModelMonitor.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert yaml.safe_load(out) == prometheus_rule("ml-demo", "breast-cancer", mon.spec)


def test_object_shape_labels_and_owner() -> None:
    obj = prometheus_rule(NS, MON, spec(), uid="u-1")
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
    meta = obj["metadata"]
    assert meta["name"] == "modelmon-credit" and meta["namespace"] == NS
    assert meta["labels"]["release"] == "kps"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "modelmon"
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == "u-1" and owner["kind"] == "ModelMonitor" and owner["controller"]
    rules = obj["spec"]["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert names == {"ModelDataDrift", "ModelPredictionDrift", "ModelTargetDrift",
                     "ModelFeatureDrift", "ModelPerformanceDegraded", "ModelLabelsMissing",
                     "ModelOperationalDegraded", "ModelDataQualityDegraded",
                     "ModelMonitorStale", "ModelMonitorCheckFailing"}
    # Only a feature with a severity of its own gets an alert of its own (as a finding).
    assert [r["labels"]["feature"] for r in rules if r["alert"] == "ModelFeatureDrift"] == [
        "income"]
    for r in rules:
        assert {"severity", "namespace", "monitor", "model", "team"} <= set(r["labels"])
        assert r["annotations"]["runbook_url"] == "https://runbooks.example/m"
        assert r["for"] == "2m"
    # Stale after three 1m intervals: the expression turns true `for` (2m) before that.
    (stale,) = [r for r in rules if r["alert"] == "ModelMonitorStale"]
    assert "> 60)" in stale["expr"] and "[60s]" in stale["expr"]


def test_threshold_change_changes_the_rule() -> None:
    s = spec()
    changed = s.model_copy(update={"drift": s.drift.model_copy(
        update={"dataset_drift_share": 0.25})})
    a = [r["expr"] for r in prometheus_rule(NS, MON, s)["spec"]["groups"][0]["rules"]]
    b = [r["expr"] for r in prometheus_rule(NS, MON, changed)["spec"]["groups"][0]["rules"]]
    assert any(">= 0.5" in e for e in a) and any(">= 0.25" in e for e in b)


def _rules_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    obj = prometheus_rule(NS, MON, spec())
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(obj["spec"]))
    return path, obj


def test_promtool_check_rules(tmp_path: Path) -> None:
    promtool = require("promtool")
    path, _ = _rules_file(tmp_path)
    golden = tmp_path / "golden.yaml"
    golden.write_text(yaml.safe_dump(yaml.safe_load(GOLDEN.read_text())["spec"]))
    for rules_file, count in ((path, 12), (golden, 14)):
        done = subprocess.run([promtool, "check", "rules", str(rules_file)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"SUCCESS: {count} rules found" in done.stdout


BASE = f'namespace="{NS}",monitor="{MON}",model="{MODEL}"'


def _expect(obj: dict[str, Any], alert: str, labels: dict[str, str], rendered: dict[str, str],
            extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The alert promtool should see: rule labels plus series labels kept by the expr."""
    rules = [r for r in obj["spec"]["groups"][0]["rules"] if r["alert"] == alert]
    rule = next(r for r in rules if all(r["labels"].get(k) == v
                                        for k, v in (extra or {}).items()))
    return [expected_alert(rule, labels, rendered)]


def test_promtool_alerts_fire_and_resolve(tmp_path: Path) -> None:
    promtool = require("promtool")
    path, obj = _rules_file(tmp_path)
    pct = "{{ $value | humanizePercentage }}"
    val = '{{ $value | printf "%.4g" }}'
    feat = "{{ $labels.feature }}"
    col = "{{ $labels.column }}"
    key = {"namespace": NS, "monitor": MON}
    # Every series: healthy for 5 minutes, bad for 10, healthy again for 10.
    series = [
        (f"modelmon_dataset_drift_share{{{BASE}}}", "0.1x5 0.75x10 0.1x10"),
        (f'modelmon_drift_detected{{{BASE},feature="p",method="ztest",role="prediction"}}',
         "0x5 1x10 0x10"),
        (f'modelmon_drift_detected{{{BASE},feature="age",method="ks",role="feature"}}',
         "1x25"),  # a feature drifting alone is neither prediction drift nor its own alert
        (f'modelmon_drift_detected{{{BASE},feature="y",method="chisquare",role="target"}}',
         "0x5 1x10 0x10"),
        (f'modelmon_drift_detected{{{BASE},feature="income",method="ks",role="feature"}}',
         "0x5 1x10 0x10"),
        (f'modelmon_operational_metric{{{BASE},name="latencyP95Seconds"}}',
         "0.1x5 0.9x10 0.1x10"),
        (f'modelmon_performance_metric{{{BASE},metric="accuracy"}}', "0.9x5 0.7x10 0.9x10"),
        (f"modelmon_labels_missing_seconds{{{BASE}}}", "0x5 600x10 0x10"),
        (f'modelmon_data_quality{{{BASE},column="age",check="missingFraction"}}',
         "0x5 0.2x10 0x10"),
        # Exported only while the column is missing or retyped.
        (f'modelmon_data_quality{{{BASE},column="zip",check="missingColumns"}}', "_x5 1x10"),
        (f'modelmon_data_quality{{{BASE},column="age",check="typeChanges"}}', "_x5 1x10"),
        (f'modelmon_monitor_phase{{{BASE},phase="Failing"}}', "0x5 1x10 0x10"),
        # Successful checks every minute, then none for 10 minutes, then again.
        (f"modelmon_last_check_timestamp_seconds{{{BASE}}}", "0+60x5 300x10 960+60x10"),
    ]
    fired = {
        "ModelDataDrift": _expect(obj, "ModelDataDrift", key, {pct: "75%"}),
        "ModelPredictionDrift": _expect(obj, "ModelPredictionDrift", {**key, "feature": "p"},
                                        {feat: "p"}),
        "ModelTargetDrift": _expect(obj, "ModelTargetDrift", {**key, "feature": "y"},
                                    {feat: "y"}),
        "ModelFeatureDrift": _expect(obj, "ModelFeatureDrift", {**key, "feature": "income"},
                                     {}, {"feature": "income"}),
        "ModelOperationalDegraded": _expect(obj, "ModelOperationalDegraded",
                                            {**key, "name": "latencyP95Seconds"},
                                            {val: "0.9"}, {"name": "latencyP95Seconds"}),
        "ModelPerformanceDegraded": _expect(obj, "ModelPerformanceDegraded",
                                            {**key, "metric": "accuracy"}, {val: "0.7"},
                                            {"metric": "accuracy"}),
        "ModelLabelsMissing": _expect(obj, "ModelLabelsMissing", key,
                                      {"{{ $value | humanizeDuration }}": "10m 0s"}),
        "ModelDataQualityDegraded": [
            *_expect(obj, "ModelDataQualityDegraded",
                     {**key, "column": "age", "check": "missingFraction"},
                     {val: "0.2", col: "age"}, {"check": "missingFraction"}),
            *_expect(obj, "ModelDataQualityDegraded",
                     {**key, "column": "zip", "check": "missingColumns"}, {col: "zip"},
                     {"check": "missingColumns"}),
            *_expect(obj, "ModelDataQualityDegraded",
                     {**key, "column": "age", "check": "typeChanges"}, {col: "age"},
                     {"check": "typeChanges"})],
        "ModelMonitorCheckFailing": _expect(obj, "ModelMonitorCheckFailing", key, {}),
    }
    tests: list[dict[str, Any]] = []
    checks = []
    for name, alerts in fired.items():
        checks += [
            {"eval_time": "4m", "alertname": name, "exp_alerts": []},
            {"eval_time": "12m", "alertname": name, "exp_alerts": alerts},
            {"eval_time": "24m", "alertname": name, "exp_alerts": []},
        ]
    # Stale: last success at 5 min; time() - 300 > 60 from 7 min (evaluated each minute),
    # firing after for=2m: within an evaluation of three intervals, not three plus `for`.
    stale = _expect(obj, "ModelMonitorStale", key, {})
    checks += [
        {"eval_time": "4m", "alertname": "ModelMonitorStale", "exp_alerts": []},
        {"eval_time": "8m", "alertname": "ModelMonitorStale", "exp_alerts": []},
        {"eval_time": "9m", "alertname": "ModelMonitorStale", "exp_alerts": stale},
        {"eval_time": "12m", "alertname": "ModelMonitorStale", "exp_alerts": stale},
        {"eval_time": "20m", "alertname": "ModelMonitorStale", "exp_alerts": []},
    ]
    tests.append({"interval": "1m", "input_series": [
        {"series": s, "values": v} for s, v in series], "alert_rule_test": checks})
    # A monitor that never reported at all is stale too, once that has lasted three
    # intervals (absent_over_time()).
    tests.append({"interval": "1m", "input_series": [
        {"series": 'modelmon_last_check_timestamp_seconds{namespace="ml",monitor="other"}',
         "values": "0+60x10"}],
        "alert_rule_test": [{"eval_time": "1m", "alertname": "ModelMonitorStale",
                             "exp_alerts": []},
                            {"eval_time": "3m", "alertname": "ModelMonitorStale",
                             "exp_alerts": stale}]})
    test_file = tmp_path / "tests.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [path.name], "evaluation_interval": "1m",
                                         "tests": tests}))
    done = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True,
                          text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(("written", "rendered"), [
    ("10m", "10m"), ("2h1d", "1d2h"), ("1.5h", "1h30m"), ("90s", "1m30s"), ("2w", "2w"),
    ("1500ms", "1s500ms"), ("0s", "0s"),
])
def test_the_rules_for_is_written_as_prometheus_reads_durations(
        tmp_path: Path, written: str, rendered: str) -> None:
    """A duration valid in the spec (any unit order, decimals) becomes Prometheus' form:
    whole units, largest first; promtool accepts every one."""
    promtool = require("promtool")
    monitor = spec().model_dump(by_alias=True)
    monitor["alerting"] = {"prometheusRule": {"for": written}}
    obj = prometheus_rule(NS, MON, ModelMonitorSpec.model_validate(monitor))
    assert {r["for"] for r in obj["spec"]["groups"][0]["rules"]} == {rendered}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(obj["spec"]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
