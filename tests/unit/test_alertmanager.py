"""The README's Alertmanager route for modelmon's alerts: valid (amtool), and routing the
labels the generated PrometheusRule really puts on alerts; and the alerts the operator
pushes to Alertmanager itself are the rule's alerts, label for label."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from modelmon.api.v1alpha1 import (
    ColumnQuality,
    DataQualityStatus,
    Delivered,
    DriftStatus,
    FeatureDriftResult,
    Finding,
    ModelMonitorSpec,
    ModelMonitorStatus,
    TypeChange,
)
from modelmon.evaluation import (
    drift_findings,
    failing_finding,
    quality_findings,
    range_findings,
    rows_of,
    table,
)
from modelmon.monitor_files import load_monitors
from modelmon.outputs.notifiers import drift_columns
from modelmon.outputs.notifiers.base import Message
from modelmon.outputs.notifiers.senders import alert_identity, alertmanager_alerts
from modelmon.outputs.rules import prometheus_rule
from toolcheck import require

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "manifests" / "samples" / "modelmonitor.yaml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# alertmanager\.yaml\n.*?)```", readme, re.S)
    assert block, "README has no alertmanager.yaml block"
    path = tmp_path / "alertmanager.yaml"
    path.write_text(block.group(1))
    return path


def route(amtool: str, config: Path, labels: dict[str, str]) -> list[str]:
    proc = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                           *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(",")


def test_the_readme_config_is_valid(config: Path) -> None:
    amtool = require("amtool")
    proc = subprocess.run([amtool, "check-config", str(config)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    amtool = require("amtool")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: default\n")
    proc = subprocess.run([amtool, "check-config", str(bad)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0


def test_alerts_of_the_sample_monitor_reach_their_team(config: Path) -> None:
    """Each alert the operator would generate for the sample goes where the README says."""
    amtool = require("amtool")
    monitor = load_monitors(SAMPLE)[0]
    rule = prometheus_rule("ml-prod", monitor.metadata.name, monitor.spec)
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    group_by = yaml.safe_load(config.read_text())["route"]["group_by"]
    for alert in alerts:
        labels = {"alertname": alert["alert"], **alert["labels"]}
        # Series labels that the expression keeps (namespace, monitor) complete the alert.
        labels.update({"namespace": "ml-prod", "monitor": monitor.metadata.name})
        assert set(group_by) <= set(labels), alert["alert"]
        expected = {"critical": ["risk-pager", "risk-slack"],
                    "warning": ["risk-slack"]}[labels["severity"]]
        assert route(amtool, config, labels) == expected, alert["alert"]
    assert route(amtool, config, {"team": "fraud", "severity": "critical"}) == ["default"]


# ------------------------------------------- pushed alerts are the PrometheusRule's alerts

SPEC = ModelMonitorSpec.model_validate({
    "model": {"name": "credit-risk", "task": "binaryClassification"},
    "reference": {"source": {"url": "r.csv"}},
    "current": {"source": {"url": "c.csv"}},
    "columns": {"prediction": "score", "predictionProbability": "p", "target": "defaulted"},
    "drift": {"severity": "warning",
              "features": {"income": {"severity": "critical"}, "age": {"method": "ks"}}},
    "performance": {"metrics": [{"name": "accuracy", "min": 0.8},
                                {"name": "rocAuc", "min": 0.7, "severity": "critical"}]},
    "dataQuality": {"missingFraction": {"max": 0.05}, "outlierFraction": {"max": 0.1},
                    "outOfRangeFraction": {"max": 0.1},
                    "newCategories": {"max": 0, "severity": "critical"}},
    "operational": {"source": {"prometheus": {"url": "http://prometheus.example:9090",
                                              "queries": [{"name": "latencyP95Seconds",
                                                           "query": "q", "max": 0.5}]}}},
    "alerting": {"labels": {"team": "risk", "service": "loans"}},
})


def _drifted(name: str, kind: str = "numeric") -> FeatureDriftResult:
    return FeatureDriftResult.model_validate({"name": name, "kind": kind, "method": "ks",
                                              "pValue": 0.001, "threshold": 0.05,
                                              "drifted": True})


def every_kind_of_finding() -> list[Finding]:
    """Findings of every kind, computed by the evaluation from figures over every bound."""
    drift = DriftStatus(share=1.0, dataset_drift=True, drifted=["income", "age"],
                        features=[_drifted("income"), _drifted("age")],
                        prediction=_drifted("score", "categorical"),
                        target=_drifted("defaulted", "categorical"))
    quality = DataQualityStatus(
        columns=[ColumnQuality(name="income", missing_fraction=0.5, outlier_fraction=0.5,
                               out_of_range_fraction=0.5),
                 ColumnQuality(name="region", missing_fraction=0.0, new_categories=3)],
        missing_columns=["zip"],
        type_changes=[TypeChange(name="age", reference="numeric", current="categorical")])
    rows = table(SPEC)
    found = [*drift_findings(rows, drift),
             *range_findings(rows_of(rows, "performance"), {"accuracy": 0.5, "rocAuc": 0.5}),
             *quality_findings(rows, quality),
             *range_findings(rows_of(rows, "operational"), {"latencyP95Seconds": 0.9})]
    # What the worker adds when a check cannot run.
    failing = failing_finding(SPEC, ModelMonitorStatus(), "InvalidData")
    assert failing is not None
    return [*found, failing]


def by_labels(expr: str) -> set[str]:
    """The label names the ``by (...)`` clauses of an expression keep (one set for all)."""
    clauses = {frozenset(n.strip() for n in m.split(","))
               for m in re.findall(r"\bby \(([^)]*)\)", expr)}
    assert len(clauses) == 1, expr
    return set(next(iter(clauses)))


def test_pushed_alerts_are_the_rule_alerts() -> None:
    """Every alert the Alertmanager notifier pushes, firing or resolved, has the alertname
    and label names of exactly one alert of the generated rule: its static labels with
    their values, plus what its ``by (...)`` keeps; and every rule alert but the
    staleness one (which needs the operator to be down) has a pushed counterpart."""
    rule = prometheus_rule("ml", "credit", SPEC)
    rules = [(r["alert"], r["labels"], by_labels(r["expr"]))
             for g in rule["spec"]["groups"] for r in g["rules"]]
    findings = every_kind_of_finding()
    kinds = {f.name.split(".")[0] for f in findings}
    assert kinds == {"drift", "performance", "dataQuality", "operational", "check"}
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    firing = findings
    half = len(firing) // 2
    message = Message("ml", "credit", "credit-risk", None, "Degraded", now, firing[:half],
                      [Delivered(name=f.name, severity=f.severity) for f in firing[half:]],
                      "key", labels=SPEC.alerting.labels,
                      drift_columns=drift_columns(SPEC))
    pushed = alertmanager_alerts(message)
    assert len(pushed) == len(firing)
    matched = set()
    for alert in pushed:
        labels = dict(alert["labels"])
        name = labels.pop("alertname")
        same = [i for i, (alertname, static, kept) in enumerate(rules)
                if alertname == name and set(labels) == set(static) | kept
                and all(labels[k] == v for k, v in static.items())]
        assert len(same) == 1, (name, labels)
        # Where the rule keeps a label of the series, the push gives it a value.
        assert all(labels[k] for k in rules[same[0]][2]), labels
        matched.add(same[0])
    assert {rules[i][0] for i in set(range(len(rules))) - matched} == {"ModelMonitorStale"}


def test_the_label_delay_finding_is_pushed_as_its_rule_alert() -> None:
    """The label-delay row's finding (absent from the sample monitor) keeps its identity."""
    spec = SPEC.model_copy(update={"performance": SPEC.performance.model_copy(
        update={"max_label_delay": "6h"})})
    (row,) = (r for r in table(spec) if r.name == "performance.labelsMissing")
    (rule,) = (r for g in prometheus_rule("ml", "credit", spec)["spec"]["groups"]
               for r in g["rules"] if r["alert"] == row.alert)
    finding = Finding(name=row.name, severity=row.severity, value=1.0, bound=0.0, message="m")
    message = Message("ml", "credit", "credit-risk", None, "Degraded",
                      datetime(2026, 11, 24, 12, tzinfo=UTC), [finding], [], "key")
    assert alert_identity(finding, message) == (rule["alert"], {})
    assert by_labels(rule["expr"]) == {"namespace", "monitor"}
